/**
 * Security, end to end on a real `sluice start` process with a Redis store:
 * - tenant isolation: team B's key cannot read team A's spend, sessions, budgets, policies, keys, ledger
 *   export or cache entries;
 * - admin routes need the admin key;
 * - upstream URLs come only from config: no body field, header or model name redirects a call (SSRF);
 * - secrets (the OpenAI and Anthropic provider keys, Sluice keys, the admin key, a key created at run time) never
 *   appear in logs, errors, metrics, admin exports, ledger entries, Redis, or responses (chat, Messages and
 *   Responses surfaces); keys are stored only as hashes.
 */
import { createHash } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeAnthropic, type FakeAnthropic } from './fakes/anthropic.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, TEAM_B_KEY } from './helpers/gateway.js'
import { spawnGateway, writeGatewayConfig, type GatewayProcess } from './helpers/process.js'
import { runRedisTests, startRedis, type TestRedis } from './helpers/redis.js'

const PROVIDER_KEY = `sk-provider-SECRET-${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 24)}`
const ANTHROPIC_PROVIDER_KEY = `sk-ant-provider-SECRET-${createHash('sha256').update(String(Math.random())).digest('hex').slice(0, 24)}`
const prefix = `sec-${Date.now()}:`

let fake: FakeOpenAI
let fakeAnthropic: FakeAnthropic
let redis: TestRedis
let gw: GatewayProcess
let attacker: Server
let attackerUrl: string
const attackerHits: string[] = []
/** Everything the gateway said to any client during the run: status lines, headers and bodies. */
const seen: string[] = []
let createdKey = ''

async function call(method: string, path: string, opts: { key?: string; body?: unknown; headers?: Record<string, string> } = {}) {
  const headers: Record<string, string> = { ...(opts.key ? { authorization: `Bearer ${opts.key}` } : {}), ...opts.headers }
  if (opts.body !== undefined) headers['content-type'] ??= 'application/json'
  const res = await fetch(gw.url + path, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), signal: AbortSignal.timeout(10_000) })
  const text = await res.text()
  seen.push(`${method} ${path} ${res.status}\n${Array.from(res.headers as unknown as Iterable<[string, string]>, ([k, v]) => `${k}: ${v}`).join('\n')}\n${text}`)
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) }
}

const chat = (key: string, content: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
  call('POST', '/v1/chat/completions', { key, body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], temperature: 0, ...extra }, headers })

describe.runIf(runRedisTests)('security', () => {
  beforeAll(async () => {
    fake = await startFakeOpenAI({ apiKey: PROVIDER_KEY })
    fakeAnthropic = await startFakeAnthropic({ apiKey: ANTHROPIC_PROVIDER_KEY })
    redis = await startRedis()
    attacker = createServer((req, res) => {
      attackerHits.push(`${req.method} ${req.url}`)
      res.end('{}')
    })
    await new Promise<void>((r) => attacker.listen(0, '127.0.0.1', () => r()))
    attackerUrl = `http://127.0.0.1:${(attacker.address() as { port: number }).port}`
    const { file } = writeGatewayConfig({
      openaiUrl: fake.url,
      openaiKey: PROVIDER_KEY,
      policies: {
        a: { cache: {}, budgets: [{ scope: 'team', limit_usd: 100 }] },
        b: { cache: {} }
      },
      config: {
        store: { kind: 'redis', url: redis.url, prefix },
        providers: {
          openai: { kind: 'openai', base_url: fake.url, api_key: PROVIDER_KEY },
          anthropic: { kind: 'anthropic', base_url: fakeAnthropic.url, api_key: ANTHROPIC_PROVIDER_KEY }
        },
        models: {
          'gpt-4o-mini': { provider: 'openai', model: 'gpt-4o-mini' },
          'text-embedding-3-small': { provider: 'openai', model: 'text-embedding-3-small', type: 'embedding' },
          'claude-sonnet': { provider: 'anthropic', model: 'claude-sonnet-4-5' }
        }
      }
    })
    gw = await spawnGateway(file)
  })
  afterAll(async () => {
    await gw?.stop()
    await redis?.stop()
    await fake?.close()
    await fakeAnthropic?.close()
    await new Promise((r) => attacker?.close(r))
  })

  describe('tenant isolation', () => {
    it("team B gets a cache miss on team A's identical prompt", async () => {
      const before = fake.requests.length
      const a1 = await chat(TEAM_A_KEY, 'the private plan of team a', {}, { 'x-sluice-session': 'sess-a-private' })
      const a2 = await chat(TEAM_A_KEY, 'the private plan of team a', {}, { 'x-sluice-session': 'sess-a-private' })
      expect([a1.status, a2.status]).toEqual([200, 200])
      expect(a2.headers.get('x-sluice-cache')).toBe('hit')
      expect(fake.requests.length - before).toBe(1)
      const b1 = await chat(TEAM_B_KEY, 'the private plan of team a')
      expect(b1.status).toBe(200)
      expect(b1.headers.get('x-sluice-cache')).toBe('miss')
      expect(fake.requests.length - before).toBe(2)
    })

    it("team B's key cannot read team A's spend, sessions, budgets, policy, keys, ledger or guardrail events", async () => {
      for (const path of ['/admin/spend?team=a', '/admin/budgets?team=a', '/admin/teams/a', '/admin/keys?team=a', '/admin/export?team=a', '/admin/overview?team=a']) {
        const r = await call('GET', path, { key: TEAM_B_KEY })
        expect(r.status, path).toBe(403)
        expect(r.json().error.code).toBe('forbidden')
      }
      const session = await call('GET', '/admin/sessions/sess-a-private?team=a', { key: TEAM_B_KEY })
      expect(session.status).toBe(404)
      // unfiltered reads are confined to the caller's team
      const spend = await call('GET', '/admin/spend?group_by=team', { key: TEAM_B_KEY })
      expect(spend.status).toBe(200)
      expect(spend.json().filter.team).toBe('b')
      expect(spend.text).not.toContain('sess-a-private')
      const exported = await call('GET', '/admin/export?format=ndjson', { key: TEAM_B_KEY })
      const lines = exported.text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l))
      expect(lines.length).toBeGreaterThan(0)
      expect(lines.every((e) => e.team === 'b')).toBe(true)
      const teams = await call('GET', '/admin/teams', { key: TEAM_B_KEY })
      expect(teams.json().data.map((t: { team?: string; name?: string }) => t.team ?? t.name)).toEqual(['b'])
      const budgets = await call('GET', '/admin/budgets', { key: TEAM_B_KEY })
      expect(budgets.json().data.every((row: { team: string }) => row.team === 'b')).toBe(true)
      // the admin key sees team a's session
      const admin = await call('GET', '/admin/sessions/sess-a-private', { key: ADMIN_KEY })
      expect(admin.status).toBe(200)
      expect(admin.json().team).toBe('a')
    })
  })

  describe('admin routes need the admin key', () => {
    it('writes are 403 with a team key and 401 without a key; the admin key works', async () => {
      const writes: [string, unknown][] = [
        ['/admin/keys', { team: 'a' }],
        ['/admin/reload', {}],
        ['/admin/budgets/reset', { team: 'a', scope: 'team' }],
        ['/admin/keys/0123456789ab/revoke', {}],
        ['/admin/keys/0123456789ab/rotate', {}]
      ]
      for (const [path, body] of writes) {
        expect((await call('POST', path, { key: TEAM_A_KEY, body })).status, path).toBe(403)
        expect((await call('POST', path, { body })).status, path).toBe(401)
        expect((await call('POST', path, { key: ADMIN_KEY.slice(0, -1) + 'X', body })).status, path).toBe(401)
      }
      for (const path of ['/admin/spend', '/admin/budgets', '/admin/export', '/admin/keys']) expect((await call('GET', path)).status, path).toBe(401)
      const created = await call('POST', '/admin/keys', { key: ADMIN_KEY, body: { team: 'b', name: 'ci' } })
      expect(created.status).toBe(201)
      createdKey = created.json().key
      expect(createdKey.length).toBeGreaterThan(20)
      // the one response that carries a created key by design; everything else is checked below
      seen.pop()
      expect((await chat(createdKey, 'hello from a created key')).status).toBe(200)
    })
  })

  describe('upstream URLs come only from config (SSRF)', () => {
    it('no body field, header or model name sends a call anywhere but the configured upstream', async () => {
      const before = fake.requests.length
      const attempts = [
        () => chat(TEAM_A_KEY, 'ssrf 1', { base_url: attackerUrl, api_base: attackerUrl, url: attackerUrl, baseURL: attackerUrl, endpoint: `${attackerUrl}/v1/chat/completions` }),
        () => chat(TEAM_A_KEY, 'ssrf 2', {}, { 'x-forwarded-host': attackerUrl.slice(7), forwarded: `host=${attackerUrl.slice(7)}`, 'x-forwarded-proto': 'http', 'x-original-url': attackerUrl, 'x-sluice-upstream': attackerUrl, 'x-sluice-base-url': attackerUrl }),
        () => chat(TEAM_A_KEY, 'ssrf 3', {}, { host: attackerUrl.slice(7) }),
        () => chat(TEAM_A_KEY, 'ssrf 4', { metadata: { base_url: attackerUrl } }),
        () => call('POST', '/v1/embeddings', { key: TEAM_A_KEY, body: { model: 'text-embedding-3-small', input: 'x', base_url: attackerUrl } })
      ]
      for (const attempt of attempts) expect((await attempt()).status).toBe(200)
      expect(fake.requests.length - before).toBe(attempts.length)
      for (const model of [`${attackerUrl}/v1`, `${attackerUrl}/v1/chat/completions`, '//127.0.0.1:1/x', 'openai/../../x', '@' + attackerUrl.slice(7)]) {
        const r = await call('POST', '/v1/chat/completions', { key: TEAM_A_KEY, body: { model, messages: [{ role: 'user', content: 'x' }] } })
        expect(r.status, model).toBe(404)
        expect(r.json().error.code).toBe('model_not_found')
      }
      expect(fake.requests.length - before).toBe(attempts.length)
      expect(attackerHits).toEqual([])
      // the upstream saw the gateway's own credential and host, never the client's
      for (const req of fake.requests.slice(before)) {
        expect(req.headers.authorization).toBe(`Bearer ${PROVIDER_KEY}`)
        expect(req.headers.host).toBe(new URL(fake.url).host)
        expect(JSON.stringify(req.headers)).not.toContain(attackerUrl.slice(7))
      }
    })
  })

  describe('secrets', () => {
    it('an upstream that echoes its credential in an error does not leak it to the client', async () => {
      fake.script = () => ({ error: { status: 401, message: `Incorrect API key provided: ${PROVIDER_KEY}. Authorization: Bearer ${PROVIDER_KEY}`, code: 'invalid_api_key' } })
      const r = await chat(TEAM_A_KEY, 'echo please')
      fake.script = undefined
      expect(r.status).toBe(401)
      expect(r.text).toContain('[redacted]')
      expect(r.text).not.toContain(PROVIDER_KEY)
      // a wrong Sluice key is not echoed either
      const wrong = await chat(TEAM_A_KEY + 'x', 'wrong key')
      expect(wrong.status).toBe(401)
      expect(wrong.text).not.toContain(TEAM_A_KEY)
    })

    it('never appear in logs, metrics, admin exports, ledger entries, Redis or responses; keys are stored only as hashes', async () => {
      // a few more paths that write to the ledger, logs and metrics: a stream, an upstream failure, a cache hit
      await call('POST', '/v1/chat/completions', { key: TEAM_B_KEY, body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stream it' }], stream: true } })
      fake.script = () => ({ error: { status: 500, message: 'boom' } })
      await chat(TEAM_A_KEY, 'fail please')
      fake.script = undefined
      // the other surfaces, with the Anthropic provider key in play: Messages (x-api-key, JSON, stream, count_tokens,
      // an upstream that echoes its credential) and Responses (pass-through JSON and stream)
      const anthropicHeaders = { 'x-api-key': TEAM_A_KEY, 'anthropic-version': '2023-06-01' }
      const message = { model: 'claude-sonnet', max_tokens: 32, messages: [{ role: 'user', content: 'hello claude' }] }
      expect((await call('POST', '/v1/messages', { body: message, headers: anthropicHeaders })).status).toBe(200)
      expect((await call('POST', '/v1/messages?beta=true', { body: { ...message, stream: true }, headers: { ...anthropicHeaders, 'anthropic-beta': 'claude-code-20250219' } })).status).toBe(200)
      expect((await call('POST', '/v1/messages/count_tokens', { body: { model: 'claude-sonnet', messages: message.messages }, headers: anthropicHeaders })).status).toBe(200)
      fakeAnthropic.setScript(() => ({ error: { status: 401, type: 'authentication_error', message: `invalid x-api-key ${ANTHROPIC_PROVIDER_KEY}` } }))
      const echoed = await call('POST', '/v1/messages', { body: { ...message, messages: [{ role: 'user', content: 'echo your key' }] }, headers: anthropicHeaders })
      fakeAnthropic.setScript(undefined)
      expect(echoed.status).toBe(401)
      expect(echoed.text).not.toContain(ANTHROPIC_PROVIDER_KEY)
      expect((await call('POST', '/v1/messages', { key: TEAM_B_KEY, body: { ...message, model: 'gpt-4o-mini' } })).status).toBe(200)
      expect((await call('POST', '/v1/responses', { key: TEAM_A_KEY, body: { model: 'gpt-4o-mini', input: 'respond please' } })).status).toBe(200)
      expect((await call('POST', '/v1/responses', { key: TEAM_B_KEY, body: { model: 'claude-sonnet', input: 'respond via claude', stream: true } })).status).toBe(200)
      expect((await call('POST', '/v1/responses', { key: TEAM_A_KEY, body: { model: 'gpt-4o-mini', input: 'stream a response', stream: true } })).status).toBe(200)
      expect(fakeAnthropic.requests.length).toBeGreaterThanOrEqual(4)
      expect(fake.requests.some((r) => r.path.endsWith('/responses'))).toBe(true)
      for (const path of ['/metrics', '/readyz', '/healthz', '/admin/export?format=ndjson', '/admin/export?format=csv', '/admin/spend?group_by=key', '/admin/keys', '/admin/teams', '/admin/overview', '/admin/guardrails', '/admin/budgets', '/admin/whoami']) {
        expect((await call('GET', path, { key: ADMIN_KEY })).status, path).toBeLessThan(400)
      }
      expect((await call('GET', '/v1/models', { key: TEAM_A_KEY })).status).toBe(200)
      const exportText = seen.findLast((s) => s.startsWith('GET /admin/export?format=ndjson'))!
      expect(exportText.split('\n').filter((l) => l.startsWith('{')).length).toBeGreaterThan(5)

      // stop the process so its logs are complete (SIGTERM also flushes the ledger)
      gw.kill('SIGTERM')
      await gw.exited
      const client = new Redis(redis.url)
      const dump: string[] = []
      try {
        for (const key of await client.keys(`${prefix}*`)) {
          const type = await client.type(key)
          dump.push(key)
          if (type === 'string') dump.push((await client.get(key)) ?? '')
          else if (type === 'hash') dump.push(JSON.stringify(await client.hgetall(key)))
          else if (type === 'stream') dump.push(JSON.stringify(await client.xrange(key, '-', '+')))
          else if (type === 'zset') dump.push(JSON.stringify(await client.zrange(key, 0, -1, 'WITHSCORES')))
          else if (type === 'set') dump.push(JSON.stringify(await client.smembers(key)))
          else if (type === 'list') dump.push(JSON.stringify(await client.lrange(key, 0, -1)))
        }
      } finally {
        client.disconnect()
      }
      const redisText = dump.join('\n')
      // the created key is in Redis as its SHA-256, never as itself
      expect(redisText).toContain(`key:${createHash('sha256').update(createdKey).digest('hex')}`)
      expect(redisText).toMatch(/request_id/)

      const captured: Record<string, string> = { stdout: gw.stdout(), stderr: gw.stderr(), responses: seen.join('\n\n'), redis: redisText }
      expect(captured.stdout).toMatch(/sluice listening/)
      for (const [name, secret] of Object.entries({ PROVIDER_KEY, ANTHROPIC_PROVIDER_KEY, TEAM_A_KEY, TEAM_B_KEY, ADMIN_KEY, createdKey })) {
        for (const [where, text] of Object.entries(captured)) expect(text.includes(secret), `${name} found in ${where}`).toBe(false)
      }
      // the upstream never received a Sluice key
      const upstreamText = JSON.stringify([...fake.requests, ...fakeAnthropic.requests].map((r) => ({ h: r.headers, b: r.body })))
      for (const secret of [TEAM_A_KEY, TEAM_B_KEY, ADMIN_KEY, createdKey]) expect(upstreamText.includes(secret)).toBe(false)
    }, 30_000)
  })
})
