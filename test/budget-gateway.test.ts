import { createServer, type Server } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import OpenAI, { type APIError } from 'openai'
import { stringify } from 'yaml'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createAdmitStep } from '../src/budget/index.js'
import { loadConfig } from '../src/config/load.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, TEAM_B_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'

const KEY_C = 'sk-sluice-team-c-0000000000000003'
const KEY_D = 'sk-sluice-team-d-0000000000000004'
const KEY_E = 'sk-sluice-team-e-0000000000000005'
const A_LIMIT = 0.0002

let fake: FakeOpenAI
let gw: TestGateway
let hook: Server
let hookUrl: string
const alerts: any[] = []

const policies = {
  a: { budgets: [{ scope: 'team', limit_usd: A_LIMIT, window: 'day' }] },
  b: {},
  c: { budgets: [{ scope: 'key', limit_usd: 0.0005, window: 'day', on_exceed: { downgrade_to: 'gpt-4o-mini' } }] },
  d: { budgets: [{ scope: 'team', limit_usd: 0.000001, window: 'total', shadow: true }] },
  e: { budgets: [{ scope: 'team', limit_usd: 0.0001, window: 'month', alert_at: [0.5] }] }
}

beforeAll(async () => {
  fake = await startFakeOpenAI()
  hook = createServer(async (req, res) => {
    let body = ''
    for await (const c of req) body += c
    alerts.push(JSON.parse(body))
    res.end('ok')
  })
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()))
  hookUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/alert`
  gw = await startTestGateway({
    openaiUrl: fake.url,
    openaiKey: fake.apiKey,
    policies,
    config: {
      keys: [
        { key: TEAM_A_KEY, team: 'a', user: 'alice' },
        { key: TEAM_B_KEY, team: 'b', user: 'bob' },
        { key: KEY_C, team: 'c' },
        { key: KEY_D, team: 'd' },
        { key: KEY_E, team: 'e' }
      ],
      webhooks: { budget_alert_url: hookUrl }
    }
  })
})
afterAll(async () => {
  await gw?.close(0)
  await fake?.close()
  hook?.close()
})
beforeEach(() => {
  fake.script = undefined
})

const client = (key: string, maxRetries = 0) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries })
const ask = (key: string, max_tokens: number, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}, retries = 0) =>
  client(key, retries).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], max_tokens, ...extra }).withResponse()
const budgets = async (key: string, query = '') => (await (await fetch(`${gw.url}/admin/budgets${query}`, { headers: { authorization: `Bearer ${key}` } })).json()) as any
const metric = async (name: string) => {
  const text = await gw.gateway.metrics.registry.metrics()
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0)
}
const ledgerTotal = async (team: string) => {
  await gw.gateway.ledger.flush()
  return (await gw.gateway.store.queryLedger({ team })).reduce((s, e) => s + e.cost_usd, 0)
}
async function refusal(p: Promise<unknown>): Promise<APIError> {
  try {
    await p
  } catch (err) {
    return err as APIError
  }
  throw new Error('expected a refusal')
}
const header = (err: APIError, name: string) => (err.headers as unknown as Headers).get(name)

describe('budgets through the gateway (openai SDK, real HTTP)', () => {
  it('refuses a request whose worst case does not fit, in OpenAI shape, and the SDK does not retry it', async () => {
    const before = await metric('sluice_budget_rejections_total')
    const served = fake.served.requests
    // 1000 output tokens of gpt-4o-mini may cost $0.0006: more than the $0.0002 cap
    const err = await refusal(ask(TEAM_A_KEY, 1000, {}, 2))
    expect(err.status).toBe(429)
    expect(err.code).toBe('budget_exceeded')
    expect(err.message).toMatch(/team "a" budget is \$0\.0002 per day \(UTC\), resets \d{4}-\d\d-\d\dT00:00:00\.000Z/)
    expect(header(err, 'x-should-retry')).toBe('false')
    expect(header(err, 'retry-after')).toBeNull()
    expect(await metric('sluice_budget_rejections_total')).toBe(before + 1)
    expect(fake.served.requests).toBe(served)
  })

  it('settles the actual cost, shows the tightest remaining budget, and lists it in /admin/budgets', async () => {
    const { data, response } = await ask(TEAM_A_KEY, 50)
    const cost = Number(response.headers.get('x-sluice-cost-usd'))
    expect(cost).toBeCloseTo((data.usage!.prompt_tokens * 0.15 + data.usage!.completion_tokens * 0.6) / 1e6, 12)
    const spent = await ledgerTotal('a')
    expect(Number(response.headers.get('x-sluice-budget-remaining-usd'))).toBeCloseTo(A_LIMIT - spent, 9)
    const view = await budgets(TEAM_A_KEY)
    expect(view.data).toEqual([
      expect.objectContaining({ team: 'a', scope: 'team', id: 'a', window: 'day', limit_usd: A_LIMIT, reserved_usd: 0, window_end: expect.stringMatching(/T00:00:00.000Z$/) })
    ])
    expect(view.data[0].spent_usd).toBeCloseTo(spent, 9)
    // a team key sees only its own team; the admin key sees all
    expect((await fetch(`${gw.url}/admin/budgets?team=c`, { headers: { authorization: `Bearer ${TEAM_A_KEY}` } })).status).toBe(403)
    const all = await budgets(ADMIN_KEY)
    expect(new Set(all.data.map((r: any) => r.team))).toEqual(new Set(['a', 'd', 'e']))
  })

  it('makes the output cap it reserved for explicit when the request set none', async () => {
    // without max_tokens the worst case is 4096 tokens (> the cap): refused, nothing sent upstream
    const err = await refusal(client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }))
    expect(err.code).toBe('budget_exceeded')
    // team d has only a shadow budget: no cap is imposed on its requests
    await client(KEY_D).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    expect(fake.requests.at(-1)!.body.max_tokens).toBeUndefined()
  })

  it('charges streams their real usage, and an abandoned stream what it used', async () => {
    const before = await ledgerTotal('a')
    const stream = await client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stream please' }], max_tokens: 50, stream: true })
    for await (const _ of stream) void _
    fake.script = () => ({ content: Array.from({ length: 30 }, (_, i) => `w${i}`).join(' '), completionTokens: 31, chunkDelayMs: 15 })
    const controller = new AbortController()
    const s2 = await client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'long one' }], max_tokens: 50, stream: true }, { signal: controller.signal })
    let n = 0
    await (async () => {
      for await (const _ of s2) if (++n === 4) controller.abort()
    })().catch(() => {})
    await waitFor(async () => (await gw.gateway.store.queryLedger({ team: 'a' })).some((e) => e.status === 'aborted'), () => gw.gateway.ledger.flush())
    const entries = await gw.gateway.store.queryLedger({ team: 'a' })
    const aborted = entries.find((e) => e.status === 'aborted')!
    expect(aborted.tokens.output).toBeGreaterThan(0)
    expect(entries.filter((e) => e.stream).every((e) => e.cost_usd > 0)).toBe(true)
    const after = await ledgerTotal('a')
    expect(after).toBeGreaterThan(before)
    await waitFor(async () => (await budgets(ADMIN_KEY, '?team=a')).data[0].reserved_usd === 0)
    expect((await budgets(ADMIN_KEY, '?team=a')).data[0].spent_usd).toBeCloseTo(after, 9)
  })

  it('downgrades to the named model when the asked one does not fit, and says so', async () => {
    const before = await metric('sluice_budget_downgrades_total')
    // gpt-4o with 100 output tokens may cost $0.001: over the key's $0.0005; gpt-4o-mini fits
    const { data, response } = await client(KEY_C).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], max_tokens: 100 }).withResponse()
    expect(data.choices[0]!.message.content).toBe('You said: hello')
    expect(fake.requests.at(-1)!.body.model).toBe('gpt-4o-mini')
    expect(response.headers.get('x-sluice-route')).toBe('gpt-4o-mini; downgraded-from=gpt-4o; budget=key/day')
    expect(await metric('sluice_budget_downgrades_total')).toBe(before + 1)
    // the downgraded model's own worst case must fit too
    const err = await refusal(client(KEY_C).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], max_tokens: 1000 }))
    expect(err.code).toBe('budget_exceeded')
  })

  it('counts a shadow budget past its limit without refusing', async () => {
    for (let i = 0; i < 3; i++) await ask(KEY_D, 50)
    const [row] = (await budgets(KEY_D)).data
    expect(row).toMatchObject({ scope: 'team', shadow: true, limit_usd: 0.000001 })
    expect(row.spent_usd).toBeCloseTo(await ledgerTotal('d'), 9)
    expect(row.spent_usd).toBeGreaterThan(row.limit_usd)
    expect(await metric('sluice_budget_shadow_exceeded_total')).toBeGreaterThanOrEqual(3)
  })

  it('fires an alert threshold once per window, by webhook and metric', async () => {
    // each answer costs (prompt + 50 output tokens) ≈ $0.0000315 of the $0.0001 budget
    fake.script = (body) => ({ completionTokens: Math.min(50, body.max_tokens) })
    await ask(KEY_E, 60)
    await ask(KEY_E, 60)
    await ask(KEY_E, 5)
    await waitFor(() => alerts.length > 0)
    await new Promise((r) => setTimeout(r, 100))
    expect(alerts).toHaveLength(1)
    expect(alerts[0]).toMatchObject({ type: 'budget_alert', team: 'e', scope: 'team', id: 'e', window: 'month', threshold: 0.5, limit_usd: 0.0001 })
    expect(alerts[0].spent_usd).toBeGreaterThanOrEqual(0.00005)
    expect(await metric('sluice_budget_alerts_total')).toBe(1)
  })

  it('resets a budget (admin key only)', async () => {
    const forbidden = await fetch(`${gw.url}/admin/budgets/reset`, { method: 'POST', headers: { authorization: `Bearer ${KEY_E}` }, body: JSON.stringify({ team: 'e', scope: 'team' }) })
    expect(forbidden.status).toBe(403)
    const res = await fetch(`${gw.url}/admin/budgets/reset`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` }, body: JSON.stringify({ team: 'e', scope: 'team' }) })
    expect(await res.json()).toMatchObject({ reset: 1 })
    expect((await budgets(ADMIN_KEY, '?team=e')).data[0].spent_usd).toBe(0)
  })

  it('applies a changed limit on config reload', async () => {
    expect((await refusal(ask(TEAM_A_KEY, 1000))).code).toBe('budget_exceeded')
    writeFileSync(join(gw.dir, 'a.yaml'), stringify({ budgets: [{ scope: 'team', limit_usd: 1, window: 'day' }] }))
    gw.gateway.reload(await loadConfig(gw.file, {}))
    const { response } = await ask(TEAM_A_KEY, 1000)
    expect(Number(response.headers.get('x-sluice-budget-remaining-usd'))).toBeGreaterThan(0.99)
    // with room for the default output cap, the cap it reserved for is sent upstream
    await client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    expect(fake.requests.at(-1)!.body.max_tokens).toBe(4096)
    // the spend so far was kept: only the limit changed
    expect((await budgets(ADMIN_KEY, '?team=a')).data[0].spent_usd).toBeCloseTo(await ledgerTotal('a'), 9)
  })
})

describe('calendar windows', () => {
  it('rolls a daily budget over at 00:00 UTC (injected clock)', async () => {
    let now = Date.UTC(2025, 2, 9, 23, 59, 0) // a Sunday
    const g = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      policies: { a: { budgets: [{ scope: 'team', limit_usd: 0.0001, window: 'day' }, { scope: 'key', limit_usd: 1, window: 'week' }] } },
      server: { steps: (rt) => [createAdmitStep({ config: rt.config, store: rt.store, registry: rt.metrics.registry, now: () => now })] }
    })
    try {
      const c = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 })
      const go = () => c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: 100 })
      fake.script = () => ({ completionTokens: 100 })
      await go()
      expect(((await refusal(go())) as APIError).message).toMatch(/resets 2025-03-10T00:00:00.000Z/)
      now = Date.UTC(2025, 2, 10, 0, 0, 1)
      await go()
      const states = await g.gateway.store.readBudgets({ reservations: 'budget:{a}:res', index: 'budget:{a}:idx', now })
      const keys = states.map((s) => s.key).sort()
      // two day counters (Sunday, Monday) and two week counters (weeks start on Monday)
      expect(keys.filter((k) => k.includes(':day:'))).toEqual(['budget:{a}:c:team:day:2025-03-09:a', 'budget:{a}:c:team:day:2025-03-10:a'])
      expect(keys.filter((k) => k.includes(':week:')).map((k) => k.split(':')[5])).toEqual(['2025-03-03', '2025-03-10'])
    } finally {
      await g.close(0)
    }
  })
})

async function waitFor(cond: () => boolean | Promise<boolean>, tick?: () => Promise<unknown>, ms = 3000) {
  const deadline = Date.now() + ms
  for (;;) {
    await tick?.()
    if (await cond()) return
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}
