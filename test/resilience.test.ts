import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { UpstreamError } from '../src/errors.js'
import { createBreakers } from '../src/providers/breaker.js'
import { backoffDelay, isRetryable } from '../src/providers/retry.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { startRoutingGateway, user } from './helpers/routing.js'

describe('backoff', () => {
  const policy = { base_ms: 100, max_ms: 1000, max_retry_after_ms: 5000 }
  it('is full-jitter exponential, capped', () => {
    expect(backoffDelay(0, policy, undefined, () => 0.999)).toBe(100)
    expect(backoffDelay(2, policy, undefined, () => 0.5)).toBe(200)
    expect(backoffDelay(8, policy, undefined, () => 1)).toBe(1000)
    expect(backoffDelay(3, policy, undefined, () => 0)).toBe(0)
  })
  it("honours the upstream's Retry-After within the bound, and refuses to wait longer", () => {
    expect(backoffDelay(0, policy, 1500)).toBe(1500)
    expect(backoffDelay(0, policy, 60_000)).toBeUndefined()
  })
  it('retries 429, 5xx, timeouts and connection errors, not bad requests or aborts', () => {
    expect(isRetryable(new UpstreamError(429, 'x'))).toBe(true)
    expect(isRetryable(new UpstreamError(503, 'x'))).toBe(true)
    expect(isRetryable(new UpstreamError(504, 'x', { kind: 'timeout' }))).toBe(true)
    expect(isRetryable(new UpstreamError(502, 'x', { kind: 'connect' }))).toBe(true)
    expect(isRetryable(new UpstreamError(400, 'x'))).toBe(false)
    expect(isRetryable(new UpstreamError(400, 'x', { kind: 'context_length' }))).toBe(false)
    expect(isRetryable(new UpstreamError(499, 'x', { kind: 'aborted', retryable: false }))).toBe(false)
  })
})

describe('circuit breaker (unit)', () => {
  it('opens after N consecutive failures, lets one probe through after the cooldown, closes on its success', () => {
    let now = 0
    const changes: string[] = []
    const b = createBreakers({ now: () => now, onChange: (t, s) => changes.push(`${t}:${s}`) })
    const s = { failures: 3, cooldown_ms: 1000 }
    b.acquire('t', s).failure()
    b.acquire('t', s).success() // a success resets the count
    for (let i = 0; i < 3; i++) b.acquire('t', s).failure()
    expect(b.state('t', s)).toBe('open')
    expect(() => b.acquire('t', s)).toThrow(/circuit breaker is open/)
    now = 1000
    const probe = b.acquire('t', s)
    expect(() => b.acquire('t', s)).toThrow(/circuit breaker is open/) // one probe at a time
    probe.failure()
    expect(b.state('t', s)).toBe('open')
    now = 2000
    b.acquire('t', s).success()
    expect(b.state('t', s)).toBe('closed')
    expect(changes).toEqual(['t:open', 't:half_open', 't:open', 't:half_open', 't:closed'])
  })

  it('reads as half-open once the cooldown has passed, before any probe, with or without the settings at hand', () => {
    let now = 0
    const b = createBreakers({ now: () => now })
    const s = { failures: 1, cooldown_ms: 1000 }
    b.acquire('x', s).failure()
    b.acquire('y', s).success()
    expect(b.states()).toEqual([['x', 'open'], ['y', 'closed']])
    now = 999
    expect(b.state('x')).toBe('open')
    now = 1000
    expect(b.state('x')).toBe('half_open')
    expect(b.state('x', s)).toBe('half_open')
    expect(b.states()).toEqual([['x', 'half_open'], ['y', 'closed']])
  })
})

/** A sample of a Prometheus text exposition, 0 when absent. */
function sample(text: string, name: string, labels: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `))
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0
}

let fake: FakeOpenAI
let env: Awaited<ReturnType<typeof startRoutingGateway>>

beforeAll(async () => {
  fake = await startFakeOpenAI()
  env = await startRoutingGateway(fake, {
    retry: { retries: 2, base_ms: 10, max_ms: 50, max_retry_after_ms: 1000 },
    breaker: { failures: 3, cooldown_ms: 400 },
    targets: { mid: { retry: { retries: 0 } } },
    routes: {
      retried: 'cheap',
      // separate targets per test: breakers remember failures across requests
      'retried-big': 'big',
      'retried-judge': 'judge',
      guarded: { fallback: ['mid', 'strong'] }
    }
  })
})
afterAll(async () => {
  await env.gw.close(0)
  await fake.close()
})
beforeEach(() => {
  fake.script = undefined
})

const countOf = (model: string, since: number) => fake.requests.slice(since).filter((r) => r.body?.model === model).length

describe('retries through the gateway', () => {
  it('retries a 503 and a dropped connection, then answers; every try is in the ledger', async () => {
    let n = 0
    fake.script = (body) => (body.model !== 'cheap-model' ? undefined : ++n === 1 ? { error: { status: 503, message: 'overloaded' } } : n === 2 ? { raw: '{trunc' } : undefined)
    const { data, response } = await env.client.chat.completions.create({ model: 'retried', messages: user('hi') }).withResponse()
    expect(data.choices[0]!.message.content).toBe('You said: hi')
    expect(response.headers.get('x-sluice-attempts')).toBe('3')
    const entries = await env.attemptsOf(response.headers.get('x-sluice-request-id'))
    expect(entries.map((e) => [e.status, e.reason])).toEqual([
      ['error', 'primary'],
      ['error', 'primary; retry 1'],
      ['ok', 'primary; retry 2']
    ])
  })

  it("waits for the upstream's Retry-After when it is within the bound", async () => {
    let n = 0
    fake.script = (body) => (body.model === 'cheap-model' && ++n === 1 ? { error: { status: 429, message: 'slow down', headers: { 'retry-after': '0.3' } } } : undefined)
    const started = Date.now()
    const { response } = await env.client.chat.completions.create({ model: 'retried', messages: user('hi') }).withResponse()
    expect(Date.now() - started).toBeGreaterThanOrEqual(290)
    expect(response.headers.get('x-sluice-attempts')).toBe('2')
  })

  it('does not wait for a Retry-After beyond the bound: the error comes back at once', async () => {
    fake.script = (body) => (body.model === 'big-context-model' ? { error: { status: 429, message: 'slow down', headers: { 'retry-after': '30' } } } : undefined)
    const since = fake.requests.length
    const started = Date.now()
    const err: any = await env.client.chat.completions.create({ model: 'retried-big', messages: user('hi') }).catch((e) => e)
    expect(err.status).toBe(429)
    expect(Date.now() - started).toBeLessThan(500)
    expect(countOf('big-context-model', since)).toBe(1)
  })

  it('gives up after the configured retries with the last error', async () => {
    fake.script = (body) => (body.model === 'judge-model' ? { error: { status: 502, message: 'bad gateway' } } : undefined)
    const since = fake.requests.length
    const err: any = await env.client.chat.completions.create({ model: 'retried-judge', messages: user('hi') }).catch((e) => e)
    expect(err.status).toBe(502)
    expect(countOf('judge-model', since)).toBe(3)
  })

  it('counts retries in sluice_retries_total by target and failure kind', async () => {
    const metricsText = async () => (await fetch(`${env.gw.url}/metrics`)).text()
    const before = await metricsText()
    let n = 0
    fake.script = (body) => (body.model !== 'cheap-model' ? undefined : ++n === 1 ? { error: { status: 429, message: 'slow down' } } : n === 2 ? { error: { status: 503, message: 'overloaded' } } : undefined)
    const { response } = await env.client.chat.completions.create({ model: 'retried', messages: user('hi') }).withResponse()
    expect(response.headers.get('x-sluice-attempts')).toBe('3')
    const after = await metricsText()
    const delta = (kind: string) => sample(after, 'sluice_retries_total', `target="cheap",kind="${kind}"`) - sample(before, 'sluice_retries_total', `target="cheap",kind="${kind}"`)
    expect(delta('rate_limit')).toBe(1)
    expect(delta('error')).toBe(1)
    expect(delta('timeout')).toBe(0)
    // a bad request is not retried, so not counted
    fake.script = (body) => (body.model === 'cheap-model' ? { error: { status: 400, message: 'bad' } } : undefined)
    await env.client.chat.completions.create({ model: 'retried', messages: user('hi') }).catch((e) => e)
    const last = await metricsText()
    expect(sample(last, 'sluice_retries_total', 'target="cheap",kind="error"')).toBe(sample(after, 'sluice_retries_total', 'target="cheap",kind="error"'))
  })

  it('does not retry a bad request', async () => {
    fake.script = (body) => (body.model === 'cheap-model' ? { error: { status: 400, message: 'bad' } } : undefined)
    const since = fake.requests.length
    await env.client.chat.completions.create({ model: 'retried', messages: user('hi') }).catch((e) => e)
    expect(countOf('cheap-model', since)).toBe(1)
  })
})

describe('circuit breaker through the gateway', () => {
  it('opens after repeated failures (calls skip the target), probes after the cooldown, and closes', async () => {
    const metricsText = async () => (await fetch(`${env.gw.url}/metrics`)).text()
    let midDown = true
    fake.script = (body) => (body.model === 'mid-model' && midDown ? { error: { status: 500, message: 'down' } } : undefined)
    const since = fake.requests.length
    for (let i = 0; i < 3; i++) {
      const { response } = await env.client.chat.completions.create({ model: 'guarded', messages: user('hi') }).withResponse()
      expect(response.headers.get('x-sluice-route')).toBe('strong')
    }
    expect(countOf('mid-model', since)).toBe(3)
    expect(await metricsText()).toMatch(/sluice_breaker_state\{target="mid"\} 2/)
    // open: mid is not called at all
    const { response } = await env.client.chat.completions.create({ model: 'guarded', messages: user('hi') }).withResponse()
    expect(response.headers.get('x-sluice-route')).toBe('strong')
    expect(response.headers.get('x-sluice-attempts')).toBe('1')
    expect(countOf('mid-model', since)).toBe(3)
    // after the cooldown the gauge reads half-open before any probe ran; one probe goes through, succeeds, closes it
    midDown = false
    await new Promise((r) => setTimeout(r, 450))
    expect(await metricsText()).toMatch(/sluice_breaker_state\{target="mid"\} 1/)
    const probe = await env.client.chat.completions.create({ model: 'guarded', messages: user('hi') }).withResponse()
    expect(probe.response.headers.get('x-sluice-route')).toBe('mid')
    expect(await metricsText()).toMatch(/sluice_breaker_state\{target="mid"\} 0/)
    expect(await metricsText()).toMatch(/sluice_breaker_transitions_total\{target="mid",state="half_open"\} 1/)
  })

  it('an open circuit on the only target answers 503 circuit_open with Retry-After', async () => {
    fake.script = (body) => (body.model === 'cheap-model' ? { error: { status: 500, message: 'down' } } : undefined)
    // 3 tries (1 + 2 retries) open the circuit of `cheap`
    await env.client.chat.completions.create({ model: 'retried', messages: user('hi') }).catch((e) => e)
    const since = fake.requests.length
    const res = await fetch(`${env.gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${(env.client as any).apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'retried', messages: user('hi') })
    })
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('1')
    expect((await res.json()).error.code).toBe('circuit_open')
    expect(countOf('cheap-model', since)).toBe(0)
  })
})
