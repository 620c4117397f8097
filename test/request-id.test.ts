/**
 * Every response carries `x-sluice-request-id`, errors included, and the id is the one in the ledger: a 429 or
 * 5xx that cost something can be matched with its entry.
 */
import { request as httpRequest } from 'node:http'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'

let fake: FakeOpenAI
let gw: TestGateway

beforeAll(async () => {
  fake = await startFakeOpenAI()
  gw = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, config: { server: { port: 0, host: '127.0.0.1', shutdown_grace_ms: 1000, body_limit_bytes: 4096 } } })
})
afterAll(async () => {
  await gw.close(0)
  await fake.close()
})
beforeEach(() => {
  fake.script = undefined
})

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/
const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }

const post = (path: string, body: unknown, headers: Record<string, string> = { authorization: `Bearer ${TEAM_A_KEY}` }) =>
  fetch(`${gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })

async function entriesOf(requestId: string) {
  await gw.gateway.ledger.flush()
  return (await gw.gateway.store.queryLedger({ team: 'a' })).filter((e) => e.request_id === requestId)
}

describe('x-sluice-request-id', () => {
  it('is on every error answer, on every surface, each request its own', async () => {
    const answers = await Promise.all([
      post('/v1/chat/completions', chat, {}), // 401
      post('/v1/chat/completions', '{not json'), // 400
      post('/v1/chat/completions', { ...chat, model: 'nope' }), // 404
      post('/v1/chat/completions', { ...chat, messages: [{ role: 'user', content: 'x'.repeat(8000) }] }), // 413
      post('/v1/embeddings', { model: 'text-embedding-3-small' }), // 400
      post('/v1/messages', { model: 'claude-sonnet' }, { 'x-api-key': 'wrong' }), // 401, Anthropic shape
      post('/v1/responses', {}, {}), // 401
      post('/v1/nowhere', {}), // 404 unknown route
      post('/admin/reload', {}, { authorization: `Bearer ${TEAM_A_KEY}` }), // 403
      fetch(`${gw.url}/v1/models`) // 401
    ])
    const ids = answers.map((r) => r.headers.get('x-sluice-request-id'))
    for (const [i, r] of answers.entries()) {
      expect(r.status, `answer ${i}`).toBeGreaterThanOrEqual(400)
      expect(ids[i], `answer ${i} (${r.status})`).toMatch(UUID)
    }
    expect(new Set(ids).size).toBe(ids.length)
    // Anthropic SDKs read `request-id`
    expect(answers[5]!.headers.get('request-id')).toBe(ids[5])
  })

  it('matches the ledger entry of an upstream 429 and 500', async () => {
    for (const status of [429, 500]) {
      fake.script = () => ({ error: { status, message: `upstream says ${status}`, type: 'server_error' } })
      const res = await post('/v1/chat/completions', chat, { authorization: `Bearer ${TEAM_A_KEY}`, 'x-sluice-session': `rid-${status}` })
      expect(res.status).toBe(status)
      const id = res.headers.get('x-sluice-request-id')!
      expect(id).toMatch(UUID)
      const entries = await entriesOf(id)
      expect(entries.length).toBeGreaterThan(0)
      expect(entries.every((e) => e.status === 'error' && e.session === `rid-${status}`)).toBe(true)
    }
  })

  it('is the ledger id on successes: chat, stream, embeddings, messages, responses', async () => {
    const cases: [string, unknown][] = [
      ['/v1/chat/completions', chat],
      ['/v1/chat/completions', { ...chat, stream: true }],
      ['/v1/embeddings', { model: 'text-embedding-3-small', input: 'hello' }],
      ['/v1/messages', { model: 'gpt-4o-mini', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }],
      ['/v1/responses', { model: 'gpt-4o-mini', input: 'hi' }]
    ]
    for (const [path, body] of cases) {
      const res = await post(path, body)
      await res.text()
      expect(res.status, path).toBe(200)
      const id = res.headers.get('x-sluice-request-id')!
      expect(id, path).toMatch(UUID)
      expect(await entriesOf(id), path).toHaveLength(1)
    }
  })

  it('is sent once on JSON answers built from the route\'s own header record, with type and length', async () => {
    const cases: [string, unknown, string[]][] = [
      ['/v1/chat/completions', chat, ['x-sluice-cost-usd', 'x-sluice-route']],
      ['/v1/embeddings', { model: 'text-embedding-3-small', input: 'hello' }, ['x-sluice-cost-usd']],
      ['/v1/messages', { model: 'gpt-4o-mini', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }, ['x-sluice-cost-usd', 'request-id']],
      ['/v1/responses', { model: 'gpt-4o-mini', input: 'hi' }, ['x-sluice-cost-usd']]
    ]
    for (const [path, body, expected] of cases) {
      // node:http, not fetch: fetch joins a repeated header into one value, rawHeaders keeps each line
      const raw = await new Promise<{ status: number; names: string[]; headers: Record<string, string>; body: Buffer }>((resolve, reject) => {
        const payload = JSON.stringify(body)
        const req = httpRequest(`${gw.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (b: Buffer) => chunks.push(b))
          res.on('end', () => resolve({ status: res.statusCode!, names: res.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()), headers: res.headers as Record<string, string>, body: Buffer.concat(chunks) }))
        })
        req.on('error', reject)
        req.end(payload)
      })
      expect(raw.status, path).toBe(200)
      expect(raw.names.filter((n) => n === 'x-sluice-request-id'), path).toHaveLength(1)
      expect(raw.names.filter((n) => n === 'content-type'), path).toHaveLength(1)
      expect(new Set(raw.names).size, `${path}: ${raw.names.join(' ')}`).toBe(raw.names.length)
      expect(raw.headers['content-type'], path).toBe('application/json')
      expect(Number(raw.headers['content-length']), path).toBe(raw.body.length)
      for (const name of expected) expect(raw.headers[name], `${path} ${name}`).toBeTruthy()
      if (path === '/v1/messages') expect(raw.headers['request-id']).toBe(raw.headers['x-sluice-request-id'])
      JSON.parse(raw.body.toString('utf8'))
      expect(await entriesOf(raw.headers['x-sluice-request-id']!), path).toHaveLength(1)
    }
  })

  it('is on health, metrics and admin answers too', async () => {
    for (const [path, auth] of [['/healthz'], ['/readyz'], ['/metrics'], ['/admin/spend', ADMIN_KEY]] as const) {
      const res = await fetch(`${gw.url}${path}`, { headers: auth ? { authorization: `Bearer ${auth}` } : {} })
      await res.text()
      expect(res.headers.get('x-sluice-request-id'), path).toMatch(UUID)
    }
  })
})
