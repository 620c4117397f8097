import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { formatDuration } from '../src/budget/ratelimit.js'
import type { FakeOpenAI } from './fakes/openai.js'
import { TEAM_A_KEY, TEAM_B_KEY, type TestGateway } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'
import { errorHeader, refusal } from './helpers/errors.js'

let stack: Stack
let fake: FakeOpenAI
let gw: TestGateway

beforeAll(async () => {
  ;({ fake, gw } = stack = await startStack({
    policies: { a: { rate_limits: [{ scope: 'key', rpm: 2 }] }, b: { rate_limits: [{ scope: 'team', tpm: 300 }] } }
  }))
})
afterAll(() => stack?.close())

const ask = (key: string, max_tokens?: number) =>
  stack.clientFor(key).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens }).withResponse()

describe('rate limits through the gateway', () => {
  it('refuses past the RPM with OpenAI-style headers and a Retry-After', async () => {
    const first = await ask(TEAM_A_KEY)
    expect(first.response.headers.get('x-ratelimit-limit-requests')).toBe('2')
    expect(first.response.headers.get('x-ratelimit-remaining-requests')).toBe('1')
    expect(first.response.headers.get('x-ratelimit-reset-requests')).toMatch(/^\d+(\.\d+)?s$/)
    await ask(TEAM_A_KEY)
    const served = fake.served.requests
    const err = await refusal(ask(TEAM_A_KEY))
    expect(err.status).toBe(429)
    expect(err.code).toBe('rate_limit_exceeded')
    expect(err.message).toMatch(/requests per min \(RPM\): Limit 2/)
    expect(errorHeader(err, 'x-ratelimit-remaining-requests')).toBe('0')
    // one request comes back every 30 s at 2 per minute
    expect(Number(errorHeader(err, 'retry-after'))).toBeGreaterThan(25)
    expect(Number(errorHeader(err, 'retry-after'))).toBeLessThanOrEqual(30)
    expect(errorHeader(err, 'x-should-retry')).toBeNull()
    expect(fake.served.requests).toBe(served)
    const text = await gw.gateway.metrics.registry.metrics()
    expect(text).toMatch(/sluice_ratelimit_rejections_total\{team="a",scope="key",kind="requests"\} 1/)
  })

  it('counts tokens per minute, refuses a request larger than the TPM for good, and refunds unused tokens', async () => {
    const ok = await ask(TEAM_B_KEY, 100)
    expect(ok.response.headers.get('x-ratelimit-limit-tokens')).toBe('300')
    const left = Number(ok.response.headers.get('x-ratelimit-remaining-tokens'))
    expect(left).toBeLessThan(200)
    const err = await refusal(ask(TEAM_B_KEY, 400))
    expect(err.status).toBe(429)
    expect(errorHeader(err, 'x-should-retry')).toBe('false')
    expect(errorHeader(err, 'retry-after')).toBeNull()
    // the first request asked for 100 output tokens and used a handful: the difference came back
    const again = await ask(TEAM_B_KEY, 10)
    expect(Number(again.response.headers.get('x-ratelimit-remaining-tokens'))).toBeGreaterThan(left)
  })

  it('writes durations the way OpenAI does', () => {
    expect(formatDuration(250)).toBe('250ms')
    expect(formatDuration(1500)).toBe('1.5s')
    expect(formatDuration(360_000)).toBe('6m0s')
  })
})
