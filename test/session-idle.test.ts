import { Redis } from 'ioredis'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { budgetsInScope } from '../src/budget/admit.js'
import { teamKeys } from '../src/budget/keys.js'
import type { Budget } from '../src/budget/schema.js'
import { createMemoryStore } from '../src/store/memory.js'
import { createRedisStore } from '../src/store/redis.js'
import type { Store } from '../src/store/types.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { startTestGateway, TEAM_A_KEY, TEAM_B_KEY, type TestGateway } from './helpers/gateway.js'
import { runRedisTests, startRedis, type TestRedis } from './helpers/redis.js'

// `sessions.idle_ttl_s`: a session's running total and its windowless session budget are forgotten after that
// long without a request; every request (a refused one too) pushes the expiry out.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
/** Seconds of idleness after which the gateways under test forget a session (long enough for a loaded CI). */
const IDLE_S = 3

let redis: TestRedis | undefined
beforeAll(async () => {
  if (runRedisTests) redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})

const stores: { name: string; config: () => Record<string, unknown>; make: () => Promise<Store> }[] = [
  { name: 'memory', config: () => ({ kind: 'memory' }), make: async () => createMemoryStore({ sweepEveryMs: 0 }) }
]
if (runRedisTests) {
  const prefix = () => `s${Math.random().toString(36).slice(2)}:`
  stores.push({
    name: 'redis',
    config: () => ({ kind: 'redis', url: redis!.url, prefix: prefix() }),
    make: () => createRedisStore({ url: redis!.url, prefix: prefix() })
  })
}

// concurrent: each test waits out idle TTLs, and no two share a session or a key
describe.concurrent.each(stores)('sessions.idle_ttl_s on the $name store', ({ config, make }) => {
  let fake: FakeOpenAI
  let idle: TestGateway
  let forever: TestGateway
  beforeAll(async () => {
    fake = await startFakeOpenAI()
    // every call bills its whole output cap, so one call spends most of the session's cap
    fake.script = (body) => ({ completionTokens: body.max_tokens ?? 16 })
    const policies = { a: { budgets: [{ scope: 'session', limit_usd: 0.0001 }] } }
    const start = (idle_ttl_s: number) =>
      startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, policies, config: { store: config(), sessions: { idle_ttl_s } } })
    idle = await start(IDLE_S)
    forever = await start(0)
  })
  afterAll(async () => {
    await idle?.close(0)
    await forever?.close(0)
    await fake?.close()
  })

  const ask = (gw: TestGateway, key: string, session: string) =>
    new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 }).chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 100 }, { headers: { 'x-sluice-session': session } })
      .withResponse()
      .then(
        ({ response }) => ({ status: response.status, total: Number(response.headers.get('x-sluice-session-cost-usd')) }),
        (err: unknown) => ({ status: (err as { status?: number }).status ?? 0, total: NaN })
      )

  it('forgets an idle session budget (refusals keep it), keeps it with 0', async () => {
    const session = `task-${Math.random().toString(36).slice(2)}`
    const [a, b] = await Promise.all([ask(idle, TEAM_A_KEY, session), ask(forever, TEAM_A_KEY, session)])
    expect([a.status, b.status]).toEqual([200, 200])
    expect(a.total).toBeGreaterThan(0.00005)
    const first = a.total
    // the cap is spent: refused, and each refusal is activity that keeps the session (and its spend) alive
    // (five refusals a third of the TTL apart: the last comes well past the TTL after the admitted request)
    for (let i = 0; i < 5; i++) {
      const [x, y] = await Promise.all([ask(idle, TEAM_A_KEY, session), ask(forever, TEAM_A_KEY, session)])
      expect([x.status, y.status], `refusal ${i}`).toEqual([429, 429])
      await sleep((IDLE_S * 1000) / 3)
    }
    // more than the idle TTL since the last request: a new session for the idle gateway, the same for the other
    await sleep(IDLE_S * 1000 + 600)
    const [c, d] = await Promise.all([ask(idle, TEAM_A_KEY, session), ask(forever, TEAM_A_KEY, session)])
    expect(c.status).toBe(200)
    expect(c.total).toBeCloseTo(first, 9) // the running total started again too
    expect(d.status).toBe(429)
  })

  it('keeps an active session running total past the idle TTL, forgets it once idle', async () => {
    const session = `task-${Math.random().toString(36).slice(2)}`
    const totals: number[] = []
    // team b has no budget: only the running total; requests closer together than the TTL over twice its length
    for (let i = 0; i < 5; i++) {
      const r = await ask(idle, TEAM_B_KEY, session)
      expect(r.status).toBe(200)
      totals.push(r.total)
      await sleep((IDLE_S * 1000) / 2)
    }
    for (let i = 1; i < totals.length; i++) expect(totals[i]).toBeCloseTo(totals[0]! * (i + 1), 9)
    await sleep(IDLE_S * 1000 + 600)
    const after = await ask(idle, TEAM_B_KEY, session)
    expect(after.total).toBeCloseTo(totals[0]!, 9)
  })
})

describe('incrBy with slide', () => {
  it('memory: sets the TTL on every increment with slide, only on the first without', async () => {
    let clock = 1_000_000
    const store = createMemoryStore({ now: () => clock, sweepEveryMs: 0 })
    await store.incrBy('slid', 1, 1000, true)
    await store.incrBy('fixed', 1, 1000)
    clock += 600
    await store.incrBy('slid', 1, 1000, true)
    await store.incrBy('fixed', 1, 1000)
    clock += 600 // 1.2 s after the first increment, 0.6 s after the second
    expect(await store.get('slid')).toBe('2')
    expect(await store.get('fixed')).toBeNull()
    clock += 500
    expect(await store.get('slid')).toBeNull()
  })

  it.runIf(runRedisTests)('redis: sets the TTL on every increment with slide, only on the first without', async () => {
    const prefix = `i${Math.random().toString(36).slice(2)}:`
    const store = await createRedisStore({ url: redis!.url, prefix })
    const raw = new Redis(redis!.url)
    try {
      await store.incrBy('slid', 1, 60_000, true)
      await store.incrBy('fixed', 1, 60_000)
      await sleep(400)
      await store.incrBy('slid', 1, 60_000, true)
      await store.incrBy('fixed', 1, 60_000)
      // Redis' own clock: the slid key's TTL starts again, the other's keeps running
      expect(await raw.pttl(prefix + 'slid')).toBeGreaterThan(59_800)
      expect(await raw.pttl(prefix + 'fixed')).toBeLessThanOrEqual(59_600)
      expect(await store.get('slid')).toBe('2')
    } finally {
      raw.disconnect()
      await store.close()
    }
  })
})

describe.runIf(runRedisTests)('idle session counters on Redis', () => {
  it('leave the team\'s counter index as they expire (the next reservation drops them), not only when listed', async () => {
    const prefix = `x${Math.random().toString(36).slice(2)}:`
    const store = await createRedisStore({ url: redis!.url, prefix })
    const raw = new Redis(redis!.url)
    try {
      const keys = teamKeys('agents')
      const line: Budget = { scope: 'session', limit_usd: 1, window: 'total', on_exceed: 'reject', shadow: false }
      const reserve = (session: string, id: string) => {
        const now = Date.now()
        const counters = budgetsInScope({ principal: { team: 'agents', keyId: 'k' } as never, session, tags: [] }, [line], now, 1000).map((s) => s.spec)
        return store.reserveBudget({ reservations: keys.reservations, index: keys.index, id, amountNanos: 10, counters, now, ttlMs: 60_000 })
      }
      for (const s of ['t1', 't2', 't3']) expect((await reserve(s, `r-${s}`)).ok).toBe(true)
      expect(await raw.zcard(prefix + keys.index)).toBe(3)
      await sleep(1300)
      expect((await reserve('t4', 'r-t4')).ok).toBe(true)
      expect(await raw.zcard(prefix + keys.index)).toBe(1)
      expect(await raw.keys(`${prefix}budget:*:c:session:*`)).toHaveLength(1)
    } finally {
      raw.disconnect()
      await store.close()
    }
  })
})
