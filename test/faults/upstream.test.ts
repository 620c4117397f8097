/**
 * Upstream faults: every failure of a provider ends in a fallback or a clean OpenAI-style error, one ledger
 * entry per provider call, a released budget reservation, no hung client and no upstream request left open.
 * Real loopback servers on both sides; every request is bounded by a client timeout.
 */
import { createServer } from 'node:net'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startFakeOpenAI, type FakeOpenAI } from '../fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, startTestGateway, type TestGateway } from '../helpers/gateway.js'

let fake: FakeOpenAI
let backup: FakeOpenAI
let gw: TestGateway
let deadUrl: string

/** A port that refuses connections: bound, then closed. */
async function closedPort(): Promise<number> {
  const s = createServer()
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  const port = (s.address() as { port: number }).port
  await new Promise<void>((r) => s.close(() => r()))
  return port
}

beforeAll(async () => {
  fake = await startFakeOpenAI()
  backup = await startFakeOpenAI({ apiKey: 'sk-fake-backup-upstream' })
  deadUrl = `http://127.0.0.1:${await closedPort()}/v1`
  const timeouts = { connect_ms: 1000, first_byte_ms: 400, total_ms: 3000 }
  gw = await startTestGateway({
    openaiUrl: fake.url,
    openaiKey: fake.apiKey,
    policies: {
      a: {
        budgets: [{ scope: 'team', limit_usd: 1000 }],
        routing: {
          routes: { safe: { fallback: ['gpt-4o-mini', 'backup-mini'] }, 'via-dead': { fallback: ['dead-mini', 'backup-mini'] } },
          retry: { retries: 0 },
          breaker: false
        }
      },
      b: { routing: { retry: { retries: 1, base_ms: 10, max_ms: 20, max_retry_after_ms: 2000 }, breaker: false } }
    },
    config: {
      providers: {
        openai: { kind: 'openai', base_url: fake.url, api_key: fake.apiKey, timeouts },
        backup: { kind: 'openai', base_url: backup.url, api_key: backup.apiKey, timeouts },
        dead: { kind: 'openai', base_url: deadUrl, api_key: 'sk-dead', timeouts }
      },
      models: {
        'gpt-4o-mini': { provider: 'openai', model: 'gpt-4o-mini' },
        'backup-mini': { provider: 'backup', model: 'gpt-4o-mini' },
        'dead-mini': { provider: 'dead', model: 'gpt-4o-mini' }
      }
    }
  })
})
afterAll(async () => {
  await gw?.close(0)
  await fake?.close()
  await backup?.close()
})
beforeEach(() => {
  fake.script = undefined
  backup.script = undefined
})

interface Sent {
  status: number
  headers: Headers
  text: string
  ms: number
}

/** POST a chat request, bounded by a 10 s client timeout (a hung gateway fails the test, it does not hang it). */
async function chat(body: Record<string, unknown>, key = TEAM_A_KEY): Promise<Sent> {
  const started = performance.now()
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'hello fault world' }], ...body }),
    signal: AbortSignal.timeout(10_000)
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, text, ms: performance.now() - started }
}

function expectOpenAIError(text: string): { message: string; type: string; code: string | null } {
  const body = JSON.parse(text)
  expect(Object.keys(body)).toEqual(['error'])
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type'])
  expect(typeof body.error.message).toBe('string')
  expect(typeof body.error.type).toBe('string')
  expect(body.error.code === null || typeof body.error.code === 'string').toBe(true)
  expect(body.error.message).not.toMatch(/at .*\.ts:\d+|Error:|undefined/)
  return body.error
}

/** The content a stream body carried. */
function streamText(text: string): string {
  return text
    .split('\n\n')
    .filter((e) => e.startsWith('data: {'))
    .map((e) => JSON.parse(e.slice(6)).choices?.[0]?.delta?.content ?? '')
    .join('')
}

/** The last SSE data event of a stream body. */
function lastEvent(text: string): any {
  const events = text.split('\n\n').filter((e) => e.startsWith('data: ')).map((e) => e.slice(6))
  const last = events.at(-1)!
  return last === '[DONE]' ? '[DONE]' : JSON.parse(last)
}

async function ledgerFor(requestId: string) {
  await gw.gateway.ledger.flush()
  return (await gw.gateway.store.queryLedger({ team: 'a' })).filter((e) => e.request_id === requestId)
}

/** Wait (bounded) until nothing is in flight in the gateway and no upstream response is still open; then the budget holds no reservation. */
async function expectClean() {
  const deadline = Date.now() + 3000
  while ((gw.gateway.inflight() > 0 || fake.activeRequests() > 0 || backup.activeRequests() > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
  expect(gw.gateway.inflight()).toBe(0)
  expect(fake.activeRequests()).toBe(0)
  expect(backup.activeRequests()).toBe(0)
  // settlement runs in onDone, after the response; give it a moment
  let reserved = -1
  while (Date.now() < deadline + 2000) {
    const res = await fetch(`${gw.url}/admin/budgets?team=a`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
    const rows = (await res.json()).data as { reserved_usd: number }[]
    reserved = rows.reduce((s, r) => s + r.reserved_usd, 0)
    if (reserved === 0) break
    await new Promise((r) => setTimeout(r, 20))
  }
  expect(reserved).toBe(0)
}

describe('a failing upstream with nothing to fall back to ends in a clean OpenAI-style error', () => {
  it('connection refused → 502 upstream_unreachable, ledger error entry, reservation released', async () => {
    const r = await chat({ model: 'dead-mini' })
    expect(r.status).toBe(502)
    expect(expectOpenAIError(r.text).code).toBe('upstream_unreachable')
    const entries = await ledgerFor(await lastRequestId())
    expect(entries).toHaveLength(1)
    expect(entries[0]).toMatchObject({ status: 'error', provider: 'dead', cost_usd: 0 })
    await expectClean()
  })

  it('reset before any byte → 502, no hung client', async () => {
    fake.script = () => ({ resetBeforeHeaders: true })
    const r = await chat({ model: 'gpt-4o-mini' })
    expect(r.status).toBe(502)
    expectOpenAIError(r.text)
    expect((await ledgerFor(await lastRequestId())).map((e) => e.status)).toEqual(['error'])
    await expectClean()
  })

  it('reset mid-body (status 200 sent, JSON cut) → 502', async () => {
    fake.script = () => ({ resetMidBody: true })
    const r = await chat({ model: 'gpt-4o-mini' })
    expect(r.status).toBe(502)
    expectOpenAIError(r.text)
    expect((await ledgerFor(await lastRequestId())).map((e) => e.status)).toEqual(['error'])
    await expectClean()
  })

  it('slow first byte past timeouts.first_byte_ms → 504 upstream_timeout within the bound, upstream request aborted', async () => {
    fake.script = () => ({ delayMs: 2000 })
    const before = fake.requests.length
    const r = await chat({ model: 'gpt-4o-mini' })
    expect(r.status).toBe(504)
    expect(expectOpenAIError(r.text).code).toBe('upstream_timeout')
    expect(r.ms).toBeLessThan(1500)
    expect(fake.requests.slice(before)).toHaveLength(1)
    await expectClean()
    expect(fake.requests.at(-1)!.aborted).toBe(true)
  })

  it('5xx → the upstream status and message in OpenAI shape', async () => {
    fake.script = () => ({ error: { status: 503, message: 'The engine is currently overloaded', type: 'server_error' } })
    const r = await chat({ model: 'gpt-4o-mini' })
    expect(r.status).toBe(503)
    expect(expectOpenAIError(r.text).message).toMatch(/overloaded/)
    expect((await ledgerFor(await lastRequestId())).map((e) => e.status)).toEqual(['error'])
    await expectClean()
  })

  it('malformed JSON with status 200 → 502 bad_upstream_response', async () => {
    fake.script = () => ({ raw: '{"id": "chatcmpl-x", "choices": [ {' })
    const r = await chat({ model: 'gpt-4o-mini' })
    expect(r.status).toBe(502)
    expect(expectOpenAIError(r.text).code).toBe('bad_upstream_response')
    await expectClean()
  })

  it('429 with Retry-After, no retries configured → 429 passed through to the client', async () => {
    fake.script = () => ({ error: { status: 429, message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded', headers: { 'retry-after': '7' } } })
    const r = await chat({ model: 'gpt-4o-mini' })
    expect(r.status).toBe(429)
    // the upstream's own error type ("requests") and message pass through, as OpenAI's SDK expects them
    expect(expectOpenAIError(r.text)).toMatchObject({ type: 'requests', code: 'rate_limit_exceeded', message: 'Rate limit reached' })
    expect(r.headers.get('retry-after')).toBe('7')
    await expectClean()
  })
})

describe('a failing first target falls back to the next one (route "safe": gpt-4o-mini → backup-mini)', () => {
  const faults: [string, () => object][] = [
    ['reset before headers', () => ({ resetBeforeHeaders: true })],
    ['reset mid-body', () => ({ resetMidBody: true })],
    ['slow first byte', () => ({ delayMs: 2000 })],
    ['5xx', () => ({ error: { status: 500, message: 'boom', type: 'server_error' } })],
    ['429 with a long Retry-After', () => ({ error: { status: 429, message: 'slow down', headers: { 'retry-after': '60' } } })],
    ['malformed JSON', () => ({ raw: '{"choices": [' })]
  ]
  for (const [name, reply] of faults) {
    it(`${name}: answered by the backup, two ledger entries (error + ok)`, async () => {
      fake.script = reply as () => object
      const r = await chat({ model: 'safe' })
      expect(r.status).toBe(200)
      expect(JSON.parse(r.text).choices[0].message.content).toBe('You said: hello fault world')
      expect(r.headers.get('x-sluice-route')).toBe('backup-mini')
      expect(r.headers.get('x-sluice-attempts')).toBe('2')
      const entries = await ledgerFor(r.headers.get('x-sluice-request-id')!)
      expect(entries.map((e) => [e.provider, e.status])).toEqual([
        ['openai', 'error'],
        ['backup', 'ok']
      ])
      await expectClean()
    })
  }

  it('streams: a stream that fails before its first chunk falls back too', async () => {
    fake.script = () => ({ raw: 'data: {not json\n\n' })
    const r = await chat({ model: 'safe', stream: true })
    expect(r.status).toBe(200)
    expect(lastEvent(r.text)).toBe('[DONE]')
    expect(streamText(r.text)).toBe('You said: hello fault world')
    const entries = await ledgerFor(r.headers.get('x-sluice-request-id')!)
    expect(entries.map((e) => [e.provider, e.status])).toEqual([
      ['openai', 'error'],
      ['backup', 'ok']
    ])
    await expectClean()
  })

  it('connection refused as the first target falls back (route "via-dead": dead-mini → backup-mini)', async () => {
    const r = await chat({ model: 'via-dead', stream: true })
    expect(r.status).toBe(200)
    expect(lastEvent(r.text)).toBe('[DONE]')
    const entries = await ledgerFor(r.headers.get('x-sluice-request-id')!)
    expect(entries.map((e) => [e.provider, e.status])).toEqual([
      ['dead', 'error'],
      ['backup', 'ok']
    ])
    await expectClean()
  })
})

describe('429 with Retry-After and retries configured', () => {
  it('waits the Retry-After and retries on the same target', async () => {
    let n = 0
    fake.script = () => (n++ === 0 ? { error: { status: 429, message: 'slow down', headers: { 'retry-after': '0.3' } } } : undefined)
    const { TEAM_B_KEY } = await import('../helpers/gateway.js')
    const r = await chat({ model: 'gpt-4o-mini' }, TEAM_B_KEY)
    expect(r.status).toBe(200)
    expect(r.ms).toBeGreaterThanOrEqual(280)
    expect(n).toBe(2)
    expect(r.headers.get('x-sluice-attempts')).toBe('2')
    await expectClean()
  })
})

describe('faults after the stream started: the client gets the chunks so far and a final error event', () => {
  it('reset mid-stream → error event, ledger entry charged for what streamed (estimated)', async () => {
    fake.script = () => ({ content: 'one two three four five six seven eight', resetAfterChunks: 4, chunkDelayMs: 5 })
    const r = await chat({ model: 'gpt-4o-mini', stream: true })
    expect(r.status).toBe(200)
    expect(r.text).toContain('one')
    const last = lastEvent(r.text)
    expect(last.error).toMatchObject({ type: 'api_error', code: 'upstream_connection_error' })
    const entries = await ledgerFor(r.headers.get('x-sluice-request-id')!)
    expect(entries).toHaveLength(1)
    expect(entries[0]).toMatchObject({ status: 'error', estimated: true })
    expect(entries[0]!.tokens.output).toBeGreaterThan(0)
    expect(entries[0]!.cost_usd).toBeGreaterThan(0)
    await expectClean()
  })

  it('malformed SSE event mid-stream → error event, nothing hangs', async () => {
    fake.script = () => ({ raw: `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }] })}\n\ndata: {broken\n\n` })
    const r = await chat({ model: 'gpt-4o-mini', stream: true })
    expect(r.status).toBe(200)
    expect(lastEvent(r.text).error.code).toBe('bad_upstream_response')
    await expectClean()
  })

  it('slow trickle (gap between chunks past the body timeout) → timeout error event within the bound', async () => {
    fake.script = () => ({ content: 'a b c d e f', chunkDelayMs: 1000 })
    const r = await chat({ model: 'gpt-4o-mini', stream: true })
    expect(r.status).toBe(200)
    expect(lastEvent(r.text).error.code).toBe('upstream_timeout')
    expect(r.ms).toBeLessThan(3500)
    await expectClean()
    expect(fake.requests.at(-1)!.aborted).toBe(true)
  })

  it('slow trickle within the gap bound but past timeouts.total_ms → timeout error event', async () => {
    fake.script = () => ({ content: Array.from({ length: 40 }, (_, i) => `w${i}`).join(' '), chunkDelayMs: 150 })
    const r = await chat({ model: 'gpt-4o-mini', stream: true })
    expect(r.status).toBe(200)
    expect(lastEvent(r.text).error).toBeDefined()
    expect(r.ms).toBeLessThan(4500)
    await expectClean()
  })
})

describe('no leaked sockets after a burst of faults', () => {
  it('40 concurrent requests mixing every fault leave no request in flight and a bounded pool', async () => {
    let i = 0
    const kinds = [{ resetBeforeHeaders: true }, { resetMidBody: true }, { delayMs: 1000 }, { error: { status: 500, message: 'x' } }, { raw: '{' }, {}, { resetAfterChunks: 2 }]
    fake.script = () => kinds[i++ % kinds.length]
    const results = await Promise.all(Array.from({ length: 40 }, (_, k) => chat({ model: 'gpt-4o-mini', stream: k % 2 === 0 })))
    expect(results.every((r) => r.status < 600)).toBe(true)
    expect(results.filter((r) => r.status >= 500 && r.status !== 502 && r.status !== 504 && r.status !== 500)).toEqual([])
    // a 500 only ever comes from the fake's own 500, relayed with the upstream's message
    for (const r of results.filter((r) => r.status === 500)) expect(JSON.parse(r.text).error.message).toBe('x')
    await expectClean()
    expect(fake.openConnections()).toBeLessThanOrEqual(40)
  })
})

/** The request id of the last ledger entry of team a (errors carry no x-sluice-request-id header). */
async function lastRequestId(): Promise<string> {
  await gw.gateway.ledger.flush()
  return (await gw.gateway.store.queryLedger({ team: 'a' })).at(-1)!.request_id
}
