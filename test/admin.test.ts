import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
import type { FakeOpenAI } from './fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, TEAM_B_KEY, type TestGateway } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'

let stack: Stack
let fake: FakeOpenAI
let gw: TestGateway

beforeAll(async () => {
  ;({ fake, gw } = stack = await startStack({
    policies: {
      a: { cache: { when: 'always' }, guardrails: { input: { pii: { action: 'redact' } } } },
      b: {}
    }
  }))
})
afterAll(() => stack?.close())

const api = async (path: string, key: string | undefined, init: { method?: string; body?: unknown; text?: string } = {}) => {
  const headers: Record<string, string> = {}
  if (key) headers.authorization = `Bearer ${key}`
  if (init.body !== undefined) headers['content-type'] = 'application/json'
  const res = await fetch(`${gw.url}${path}`, {
    method: init.method ?? (init.body !== undefined || init.text !== undefined ? 'POST' : 'GET'),
    headers,
    body: init.text ?? (init.body !== undefined ? JSON.stringify(init.body) : undefined)
  })
  const text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, json, text, headers: res.headers }
}

const chat = async (key: string, content: string, headers: Record<string, string> = {}) => {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] })
  })
  await res.text()
  return res.status
}

describe('admin API: keys', () => {
  it('creates a key shown once, stores only its hash, and the key works at once', async () => {
    const made = await api('/admin/keys', ADMIN_KEY, { body: { team: 'a', user: 'carol', name: 'ci' } })
    expect(made.status).toBe(201)
    expect(made.json.key).toMatch(/^sk-sluice-[\w-]{32}$/)
    expect(made.json).toMatchObject({ team: 'a', user: 'carol', name: 'ci', revoked: false, source: 'api' })
    expect(made.json.id).toMatch(/^[0-9a-f]{12}$/)
    expect(await chat(made.json.key, 'hello from a new key')).toBe(200)

    const listed = await api('/admin/keys?team=a', ADMIN_KEY)
    expect(listed.status).toBe(200)
    const row = listed.json.data.find((k: any) => k.id === made.json.id)
    expect(row).toMatchObject({ team: 'a', user: 'carol', name: 'ci', revoked: false })
    // config keys are listed too, marked as such; no secret and no full hash anywhere
    expect(listed.json.data.some((k: any) => k.source === 'config' && k.user === 'alice')).toBe(true)
    expect(listed.text).not.toContain(made.json.key)
    expect(listed.text).not.toMatch(/[0-9a-f]{64}/)
    expect(listed.text).not.toContain(TEAM_A_KEY)
  })

  it('revokes and rotates: the old key is refused from the next request on', async () => {
    const made = await api('/admin/keys', ADMIN_KEY, { body: { team: 'b', user: 'dan' } })
    const rotated = await api(`/admin/keys/${made.json.id}/rotate`, ADMIN_KEY, { method: 'POST' })
    expect(rotated.status).toBe(201)
    expect(rotated.json).toMatchObject({ team: 'b', user: 'dan', rotated_from: made.json.id, revoked: { id: made.json.id, revoked: true } })
    expect(rotated.json.key).not.toBe(made.json.key)
    expect(await chat(made.json.key, 'old key')).toBe(401)
    expect(await chat(rotated.json.key, 'new key')).toBe(200)

    const again = await api(`/admin/keys/${made.json.id}/rotate`, ADMIN_KEY, { method: 'POST' })
    expect(again.status).toBe(409)

    const revoked = await api(`/admin/keys/${rotated.json.id}/revoke`, ADMIN_KEY, { method: 'POST' })
    expect(revoked.status).toBe(200)
    expect(revoked.json).toMatchObject({ id: rotated.json.id, revoked: true })
    expect(revoked.json.revoked_at).toMatch(/^\d{4}-/)
    expect(await chat(rotated.json.key, 'revoked key')).toBe(401)
    const listed = await api('/admin/keys?team=b', ADMIN_KEY)
    expect(listed.json.data.filter((k: any) => k.source === 'api' && k.user === 'dan').map((k: any) => k.revoked)).toEqual([true, true])
  })

  it('keeps teams apart: a team key reads only its own keys and cannot create, revoke or rotate', async () => {
    const aKey = await api('/admin/keys', ADMIN_KEY, { body: { team: 'a', name: 'victim' } })
    const own = await api('/admin/keys', TEAM_B_KEY)
    expect(own.status).toBe(200)
    expect(own.json.data.length).toBeGreaterThan(0)
    expect(own.json.data.every((k: any) => k.team === 'b')).toBe(true)
    expect((await api('/admin/keys?team=a', TEAM_B_KEY)).status).toBe(403)
    expect((await api(`/admin/keys/${aKey.json.id}/revoke`, TEAM_B_KEY, { method: 'POST' })).status).toBe(403)
    expect((await api(`/admin/keys/${aKey.json.id}/rotate`, TEAM_B_KEY, { method: 'POST' })).status).toBe(403)
    expect((await api('/admin/keys', TEAM_B_KEY, { body: { team: 'b' } })).status).toBe(403)
    expect((await api('/admin/keys', 'sk-not-a-key-at-all', { body: { team: 'b' } })).status).toBe(401)
    expect((await api('/admin/keys', undefined)).status).toBe(401)
    expect(await chat(aKey.json.key, 'still alive')).toBe(200)
  })

  it('validates ids and teams, so no path or store key can be addressed', async () => {
    for (const id of ['..%2F..%2Fetc%2Fpasswd', 'ABCDEF012345', '0123456789a', 'key%3Asomething']) {
      const r = await api(`/admin/keys/${id}/revoke`, ADMIN_KEY, { method: 'POST' })
      expect([400, 404]).toContain(r.status)
      expect(r.json?.error).toBeDefined()
    }
    expect((await api('/admin/keys/000000000000/revoke', ADMIN_KEY, { method: 'POST' })).status).toBe(404)
    expect((await api('/admin/keys', ADMIN_KEY, { body: { team: '../a' } })).status).toBe(400)
    expect((await api('/admin/keys', ADMIN_KEY, { body: { team: 'nope' } })).status).toBe(404)
    expect((await api('/admin/keys', ADMIN_KEY, { body: { team: 'a', user: 'x:y' } })).status).toBe(400)
    expect((await api('/admin/keys', ADMIN_KEY, { text: 'not json' })).status).toBe(400)
    expect((await api('/admin/teams/..%2Fb', ADMIN_KEY)).status).toBe(400)
  })
})

describe('admin API: spend, overview and export', () => {
  beforeAll(async () => {
    expect(await chat(TEAM_A_KEY, 'alpha one', { 'x-sluice-session': 'sess-a1', 'x-sluice-agent': 'planner' })).toBe(200)
    expect(await chat(TEAM_A_KEY, 'alpha one', { 'x-sluice-session': 'sess-a1' })).toBe(200) // exact cache hit
    expect(await chat(TEAM_A_KEY, 'mail me at ada@example.com please', { 'x-sluice-session': 'sess-a2' })).toBe(200)
    expect(await chat(TEAM_B_KEY, 'bravo', { 'x-sluice-session': 'sess-b1' })).toBe(200)
    // a key without a user, so the body's user is recorded
    const bare = await api('/admin/keys', ADMIN_KEY, { body: { team: 'b', name: 'no-user' } })
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${bare.json.key}`, 'content-type': 'application/json', 'x-sluice-session': 'sess-b1' },
      body: JSON.stringify({ model: 'gpt-4o-mini', user: '=HYPERLINK("http://x")', messages: [{ role: 'user', content: 'formula' }] })
    })
    expect(res.status).toBe(200)
    fake.script = () => ({ content: 'cached prefix', promptTokens: 2000, cachedTokens: 1500 })
    expect(await chat(TEAM_A_KEY, 'long shared prefix', { 'x-sluice-session': 'sess-a2' })).toBe(200)
    fake.script = undefined
    // what the cache step writes for a semantic hit (the step records it through the same ledger)
    gw.gateway.ledger.record({
      id: 'semantic-hit-1', request_id: 'req-semantic-1', ts: Date.now(), team: 'a', key_id: 'abcdefabcdef', session: 'sess-a1', alias: 'gpt-4o-mini',
      model: 'cache', provider: 'cache', surface: 'chat', stream: false, status: 'cache_hit', tokens: { input: 0, output: 0, cached_input: 0, cache_write: 0 },
      estimated: false, cost_usd: 0, saved_usd: 0.25, cache: 'semantic-hit', latency_ms: 2, attempt: 0
    })
    await gw.gateway.ledger.flush()
  })

  it('confines spend to the caller\'s team', async () => {
    const all = await api('/admin/spend?group_by=team', ADMIN_KEY)
    expect(all.json.groups.map((g: any) => g.key).sort()).toEqual(['a', 'b'])
    const b = await api('/admin/spend?group_by=team', TEAM_B_KEY)
    expect(b.json.groups.map((g: any) => g.key)).toEqual(['b'])
    expect((await api('/admin/spend?team=a', TEAM_B_KEY)).status).toBe(403)
    expect((await api('/admin/sessions/sess-a1', TEAM_B_KEY)).status).toBe(404)
    expect((await api('/admin/sessions/sess-a1', TEAM_A_KEY)).json.session).toBe('sess-a1')
    expect((await api('/admin/spend?since=yesterday-ish', ADMIN_KEY)).status).toBe(400)
  })

  it('filters spend by key, user, session, agent, tag, model, alias and since/until, and groups by day', async () => {
    // three entries of team b on two past UTC days, each field distinct, beside the live traffic of this file
    const base = {
      team: 'b', provider: 'openai', surface: 'chat' as const, stream: false, status: 'ok' as const, estimated: false, latency_ms: 5, attempt: 1,
      tokens: { input: 100, output: 10, cached_input: 0, cache_write: 0 }
    }
    const rows = [
      { ...base, id: 'sp-1', request_id: 'sp-req-1', ts: Date.parse('2024-01-10T12:00:00Z'), key_id: 'spendkey0001', user: 'sp-u1', session: 'sp-s1', agent: 'sp-agent1', tags: ['sp-t1', 'sp-t2'], alias: 'sp-alias1', model: 'openai/sp-m1', cost_usd: 0.001 },
      { ...base, id: 'sp-2', request_id: 'sp-req-2', ts: Date.parse('2024-01-11T08:00:00Z'), key_id: 'spendkey0002', user: 'sp-u2', session: 'sp-s2', agent: 'sp-agent2', tags: ['sp-t2'], alias: 'sp-alias2', model: 'openai/sp-m2', cost_usd: 0.002 },
      { ...base, id: 'sp-3', request_id: 'sp-req-3', ts: Date.parse('2024-01-11T18:00:00Z'), key_id: 'spendkey0001', user: 'sp-u1', session: 'sp-s1', agent: 'sp-agent1', tags: ['sp-t1'], alias: 'sp-alias1', model: 'openai/sp-m1', cost_usd: 0.004 }
    ]
    for (const r of rows) gw.gateway.ledger.record(r)
    await gw.gateway.ledger.flush()
    const range = 'since=2024-01-01T00:00:00Z&until=2024-02-01T00:00:00Z'
    const spend = async (query: string) => {
      const res = await api(`/admin/spend?${query}`, ADMIN_KEY)
      expect(res.status, query).toBe(200)
      return res.json
    }
    const cases: [string, number, number][] = [
      // query, requests, cost
      ['key=spendkey0001', 2, 0.005],
      ['user=sp-u2', 1, 0.002],
      ['session=sp-s1', 2, 0.005],
      ['agent=sp-agent2', 1, 0.002],
      ['tag=sp-t2', 2, 0.003],
      ['tag=sp-t1', 2, 0.005],
      ['model=openai/sp-m2', 1, 0.002],
      ['alias=sp-alias1', 2, 0.005],
      [range, 3, 0.007],
      ['since=2024-01-11T00:00:00Z&until=2024-01-11T12:00:00Z', 1, 0.002],
      // epoch milliseconds, inclusive
      [`since=${Date.parse('2024-01-11T18:00:00Z')}&until=2024-01-31`, 1, 0.004],
      ['team=b&user=sp-u1&tag=sp-t2', 1, 0.001]
    ]
    for (const [query, requests, cost] of cases) {
      const got = await spend(query)
      expect(got.total.requests, query).toBe(requests)
      expect(got.total.cost_usd, query).toBeCloseTo(cost, 12)
    }
    // the echoed filter names what was applied
    expect((await spend('key=spendkey0001&agent=sp-agent1')).filter).toEqual({ key_id: 'spendkey0001', agent: 'sp-agent1' })
    // no match is an empty total, not an error
    expect((await spend('session=sp-none')).total.requests).toBe(0)
    // group by day: one row per UTC day, in date order
    const byDay = await spend(`${range}&group_by=day`)
    expect(byDay.groups.map((g: any) => [g.key, g.requests, g.cost_usd])).toEqual([
      ['2024-01-10', 1, 0.001],
      ['2024-01-11', 2, 0.006]
    ])
    // other groupings over the same range
    expect((await spend(`${range}&group_by=tag`)).groups.map((g: any) => [g.key, g.requests])).toEqual([
      ['sp-t1', 2],
      ['sp-t2', 2]
    ])
    expect((await spend(`${range}&group_by=key`)).groups.map((g: any) => g.key)).toEqual(['spendkey0001', 'spendkey0002'])
    // the live traffic: the agent header of the first request is a filter too
    const planner = await spend('agent=planner')
    expect(planner.total.requests).toBe(1)
    expect(planner.total.cost_usd).toBeGreaterThan(0)
    // a team key applies the same filters inside its own team only
    expect((await api('/admin/spend?user=sp-u1', TEAM_A_KEY)).json.total.requests).toBe(0)
    expect((await api('/admin/spend?user=sp-u1', TEAM_B_KEY)).json.total.requests).toBe(2)
    expect((await api('/admin/spend?group_by=galaxy', ADMIN_KEY)).status).toBe(400)
  })

  it('summarizes the dashboard overview from the ledger', async () => {
    const o = await api('/admin/overview?since=1h', ADMIN_KEY)
    expect(o.status).toBe(200)
    expect(o.json.bucket).toBe('hour')
    expect(o.json.totals.requests).toBeGreaterThanOrEqual(5)
    expect(o.json.cache.hits).toBeGreaterThanOrEqual(1)
    expect(o.json.cache.layers.find((l: any) => l.layer === 'semantic')).toEqual({ layer: 'semantic', hits: 1, saved_usd: 0.25 })
    // gpt-4o-mini: input $0.15/M, cached input $0.075/M → 1500 cached tokens saved 1500 × 0.075 / 1e6
    const provider = o.json.cache.layers.find((l: any) => l.layer === 'provider prompt cache')
    expect(provider.cached_tokens).toBe(1500)
    expect(provider.saved_usd).toBeCloseTo((1500 * 0.075) / 1e6, 12)
    expect(o.json.spend.by_team.map((s: any) => s.key).sort()).toEqual(['a', 'b'])
    expect(o.json.spend.by_model[0].key).toBe('openai/gpt-4o-mini')
    expect(o.json.spend.by_team[0].values.length).toBe(o.json.spend.buckets.length)
    expect(o.json.top_sessions.map((s: any) => s.session)).toEqual(expect.arrayContaining(['sess-a1', 'sess-a2', 'sess-b1']))
    expect(o.json.routing.split[0]).toMatchObject({ model: 'openai/gpt-4o-mini' })
    const b = await api('/admin/overview?since=1h', TEAM_B_KEY)
    expect(b.json.top_sessions.every((s: any) => s.team === 'b')).toBe(true)
    expect(b.json.spend.by_team.map((s: any) => s.key)).toEqual(['b'])
  })

  it('exports ledger entries as NDJSON and CSV, confined to the team', async () => {
    const nd = await api('/admin/export?format=ndjson&since=1h', ADMIN_KEY)
    expect(nd.status).toBe(200)
    expect(nd.headers.get('content-type')).toContain('application/x-ndjson')
    const lines = nd.text.trim().split('\n').map((l) => JSON.parse(l))
    const ledger = await gw.gateway.store.queryLedger({ since: Date.now() - 3_600_000 })
    expect(lines.length).toBe(ledger.length)
    expect(lines.map((e) => e.ts)).toEqual([...lines.map((e) => e.ts)].sort((x, y) => x - y))

    const csv = await api('/admin/export?format=csv&since=1h', TEAM_B_KEY)
    expect(csv.headers.get('content-type')).toContain('text/csv')
    expect(csv.headers.get('content-disposition')).toMatch(/attachment; filename="sluice-ledger-.*\.csv"/)
    const rows = csv.text.trim().split('\r\n')
    expect(rows[0]).toMatch(/^time,id,request_id,team,key_id,user,session/)
    expect(rows.length - 1).toBe(ledger.filter((e) => e.team === 'b').length)
    expect(rows.slice(1).every((r) => r.split(',')[3] === 'b')).toBe(true)
    // a client-chosen user that a spreadsheet would run is neutralised
    expect(csv.text).toContain(`"'=HYPERLINK(""http://x"")"`)
    expect((await api('/admin/export?team=a', TEAM_B_KEY)).status).toBe(403)
    expect((await api('/admin/export?format=xml', ADMIN_KEY)).status).toBe(400)
  })

  it('lists recent guardrail actions without matched text, per team', async () => {
    const g = await api('/admin/guardrails', ADMIN_KEY)
    expect(g.status).toBe(200)
    expect(g.json.by_rule).toEqual(expect.arrayContaining([expect.objectContaining({ layer: 'input', rule: 'pii.email', action: 'redact' })]))
    expect(g.text).not.toContain('ada@example.com')
    const b = await api('/admin/guardrails', TEAM_B_KEY)
    expect(b.json.recent.every((e: any) => e.team === 'b')).toBe(true)
  })
})

describe('admin API: teams, policies and reload', () => {
  it('reads teams and policies, confined for team keys', async () => {
    const all = await api('/admin/teams', ADMIN_KEY)
    expect(all.json.data.map((t: any) => t.team).sort()).toEqual(['a', 'b'])
    expect(all.json.data.find((t: any) => t.team === 'a').policy.cache.when).toBe('always')
    const mine = await api('/admin/teams', TEAM_B_KEY)
    expect(mine.json.data.map((t: any) => t.team)).toEqual(['b'])
    expect((await api('/admin/teams/a', TEAM_B_KEY)).status).toBe(403)
    expect((await api('/admin/teams/b', TEAM_B_KEY)).json.team).toBe('b')
    expect((await api('/admin/teams/zzz', ADMIN_KEY)).status).toBe(404)
  })

  it('validates a policy document without applying it', async () => {
    const ok = await api('/admin/policies/validate', ADMIN_KEY, { text: 'models: [gpt-4o-mini, gpt-9]\nbudgets:\n  - { scope: team, window: day, limit_usd: 5 }\n' })
    expect(ok.status).toBe(200)
    expect(ok.json.valid).toBe(true)
    expect(ok.json.warnings).toEqual(['models: "gpt-9" is not a model of this gateway'])
    const bad = await api('/admin/policies/validate', ADMIN_KEY, { text: JSON.stringify({ budgets: [{ scope: 'team', window: 'fortnight', limit_usd: 5 }], colour: 'red' }) })
    expect(bad.status).toBe(422)
    expect(bad.json.valid).toBe(false)
    // OpenAI's error shape, like every other error
    expect(bad.json.error).toMatchObject({ type: 'invalid_request_error', param: null, code: 'invalid_policy' })
    expect(bad.json.error.message).toMatch(/at budgets\.0\.window/)
    expect(bad.json.error.message).toMatch(/colour/)
    const yaml = await api('/admin/policies/validate', ADMIN_KEY, { text: 'models: [unclosed' })
    expect(yaml.status).toBe(422)
    expect(yaml.json.error).toMatchObject({ code: 'invalid_policy', message: expect.stringMatching(/^not valid YAML or JSON/) })
    // nothing was applied
    expect((await api('/admin/teams/a', ADMIN_KEY)).json.policy.models).toBeUndefined()
  })

  it('reloads from disk; a broken file keeps the running config and shows in /readyz', async () => {
    expect((await api('/admin/reload', TEAM_A_KEY, { method: 'POST' })).status).toBe(403)
    const policyFile = join(gw.dir, 'b.yaml')
    const original = readFileSync(policyFile, 'utf8')
    writeFileSync(policyFile, 'models: [gpt-4o]\n')
    const ok = await api('/admin/reload', ADMIN_KEY, { method: 'POST' })
    expect(ok.status).toBe(200)
    expect(ok.json.reloaded).toBe(true)
    expect((await api('/admin/teams/b', ADMIN_KEY)).json.policy.models).toEqual(['gpt-4o'])

    writeFileSync(policyFile, 'models: 12\n')
    const bad = await api('/admin/reload', ADMIN_KEY, { method: 'POST' })
    expect(bad.status).toBe(422)
    expect(bad.json.reloaded).toBe(false)
    expect(bad.json.error).toMatchObject({ type: 'invalid_request_error', param: null, code: 'invalid_config' })
    expect(bad.json.error.message).toContain('b.yaml')
    expect((await api('/admin/teams/b', ADMIN_KEY)).json.policy.models).toEqual(['gpt-4o'])
    expect((await api('/readyz', undefined)).text).toContain('last reload failed')

    writeFileSync(policyFile, original)
    expect((await api('/admin/reload', ADMIN_KEY, { method: 'POST' })).status).toBe(200)
    expect((await api('/readyz', undefined)).text).not.toContain('last reload failed')
  })

  it('refuses a config key from the reload that drops it, though the key was used (and so remembered) before', async () => {
    expect(await chat(TEAM_B_KEY, 'before the reload')).toBe(200)
    const original = readFileSync(gw.file, 'utf8')
    const config = parse(original) as { keys: { key: string }[] }
    writeFileSync(gw.file, stringify({ ...config, keys: config.keys.filter((k) => k.key !== TEAM_B_KEY) }))
    try {
      expect((await api('/admin/reload', ADMIN_KEY, { method: 'POST' })).status).toBe(200)
      expect(await chat(TEAM_B_KEY, 'after the reload')).toBe(401)
      expect(await chat(TEAM_A_KEY, 'after the reload')).toBe(200)
    } finally {
      writeFileSync(gw.file, original)
      expect((await api('/admin/reload', ADMIN_KEY, { method: 'POST' })).status).toBe(200)
    }
    expect(await chat(TEAM_B_KEY, 'back again')).toBe(200)
  })
})
