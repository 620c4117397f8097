import { createConnection, createServer, type Server, type Socket } from 'node:net'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { TEAM_A_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'
import { runRedisTests, startRedis, type TestRedis } from './helpers/redis.js'

// `store.reserve_early` (the Redis default): the budget reservation, the rate-limit check and the exact-cache read share
// one round trip before the upstream call. Redis sits behind a proxy that holds every reply back REPLY_DELAY_MS, so each round trip
// a miss waits for before its upstream call shows as that much time before the fake sees the request.
const REPLY_DELAY_MS = 150

/** A TCP proxy to Redis that forwards commands at once and replies `delayMs` late (in order). */
async function delayingProxy(port: number, delayMs: number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = createConnection({ host: '127.0.0.1', port })
    sockets.add(client).add(upstream)
    client.on('data', (b) => upstream.write(b))
    upstream.on('data', (b) => setTimeout(() => client.writable && client.write(b), delayMs))
    const end = () => {
      client.destroy()
      upstream.destroy()
    }
    client.on('close', end).on('error', end)
    upstream.on('close', end).on('error', end)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `redis://127.0.0.1:${(server.address() as { port: number }).port}`,
    close: () => {
      for (const s of sockets) s.destroy()
      return new Promise((r) => server.close(() => r()))
    }
  }
}

describe.skipIf(!runRedisTests)('budget reservation sent with the exact-cache read (store.reserve_early, Redis)', () => {
  let redis: TestRedis
  let proxy: Awaited<ReturnType<typeof delayingProxy>>
  let fake: FakeOpenAI
  const gateways: Record<'early' | 'late' | 'rateEarly' | 'rateLate', TestGateway> = {} as never
  /** When the fake saw each prompt (performance.now()). */
  const arrivals = new Map<string, number>()

  beforeAll(async () => {
    redis = await startRedis()
    proxy = await delayingProxy(redis.port, REPLY_DELAY_MS)
    fake = await startFakeOpenAI()
    fake.script = (body: { messages: { content: string }[] }) => {
      arrivals.set(body.messages[0]!.content, performance.now())
      return { completionTokens: 5, promptTokens: 10 }
    }
    for (const [name, early, rated] of [['early', true, false], ['late', false, false], ['rateEarly', true, true], ['rateLate', false, true]] as const) {
      const budgets = [{ scope: 'team', limit_usd: 1, window: 'day' }]
      gateways[name] = await startTestGateway({
        openaiUrl: fake.url,
        openaiKey: fake.apiKey,
        policies: { a: { cache: { when: 'always' }, budgets, ...(rated ? { rate_limits: [{ scope: 'key', rpm: 10_000 }] } : {}) } },
        config: { store: { kind: 'redis', url: proxy.url, prefix: `early-${name}:`, reserve_early: early, command_timeout_ms: 5000 } }
      })
    }
  }, 30_000)
  afterAll(async () => {
    for (const gw of Object.values(gateways)) await gw?.close(0)
    await proxy?.close()
    await fake?.close()
    await redis?.stop()
  })

  /** Milliseconds from the client's request to the fake's receipt of it. */
  const untilUpstream = async (gw: TestGateway, prompt: string): Promise<number> => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0, timeout: 10_000 })
    const started = performance.now()
    const { response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }], max_tokens: 10 }).withResponse()
    expect(response.headers.get('x-sluice-cache')).toBe('miss')
    return arrivals.get(prompt)! - started
  }

  it('waits one store round trip before the upstream call on a miss, against two with reserve_early: false', async () => {
    // the first requests load the Lua scripts (EVALSHA, then EVAL on the script-cache miss)
    for (const gw of Object.values(gateways)) for (const i of [1, 2]) await untilUpstream(gw, `warm-up ${i} ${gw.url}`)
    const early: number[] = []
    const late: number[] = []
    for (let i = 0; i < 3; i++) {
      early.push(await untilUpstream(gateways.early, `early question ${i}`))
      late.push(await untilUpstream(gateways.late, `late question ${i}`))
    }
    const fastest = (xs: number[]) => Math.min(...xs)
    // the proxy's delay is there (one round trip at least), and the early build waits for no second one
    expect(fastest(early)).toBeGreaterThanOrEqual(REPLY_DELAY_MS)
    expect(fastest(early)).toBeLessThan(1.6 * REPLY_DELAY_MS)
    // the exact-cache read, then the reservation
    expect(fastest(late)).toBeGreaterThanOrEqual(2 * REPLY_DELAY_MS)
  }, 30_000)

  it('sends the rate-limit check with them: one round trip before the upstream call, against three', async () => {
    // the rate-limit script loads on its first use (the file's first test may not have run)
    for (const gw of [gateways.rateEarly, gateways.rateLate]) await untilUpstream(gw, `rated warm-up ${gw.url}`)
    const early: number[] = []
    const late: number[] = []
    for (let i = 0; i < 3; i++) {
      early.push(await untilUpstream(gateways.rateEarly, `rated early question ${i}`))
      late.push(await untilUpstream(gateways.rateLate, `rated late question ${i}`))
    }
    expect(Math.min(...early)).toBeGreaterThanOrEqual(REPLY_DELAY_MS)
    expect(Math.min(...early)).toBeLessThan(1.6 * REPLY_DELAY_MS)
    // the rate check, the exact-cache read, then the reservation
    expect(Math.min(...late)).toBeGreaterThanOrEqual(3 * REPLY_DELAY_MS)
  }, 30_000)

  it('reserves after the lookup, as before, while other commands await their replies (the store is busy)', async () => {
    const first = untilUpstream(gateways.early, 'busy: the first')
    // the first request's round trip is under way: the second finds commands in flight
    await new Promise((r) => setTimeout(r, 30))
    const second = await untilUpstream(gateways.early, 'busy: the second')
    expect(await first).toBeLessThan(1.6 * REPLY_DELAY_MS)
    expect(second).toBeGreaterThanOrEqual(2 * REPLY_DELAY_MS)
  }, 30_000)
})
