import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseCounterKey, teamKeys } from '../src/budget/keys.js'
import { windowAt } from '../src/budget/window.js'
import { createMemoryStore } from '../src/store/memory.js'
import { createRedisStore } from '../src/store/redis.js'
import type { BudgetCounterSpec, Store } from '../src/store/types.js'
import { runRedisTests, startRedis, startRedisCluster, type TestRedis, type TestRedisCluster } from './helpers/redis.js'

let redis: TestRedis | undefined
const stores: { name: string; make: () => Promise<Store> }[] = [{ name: 'memory', make: async () => createMemoryStore() }]
let cluster: TestRedisCluster | undefined
if (runRedisTests) {
  stores.push({ name: 'redis', make: async () => createRedisStore({ url: redis!.url, prefix: `t${Math.random().toString(36).slice(2)}:` }) })
  // three masters: every script's keys must share one slot (the `{team}` tag), or the Cluster refuses it (CROSSSLOT)
  stores.push({ name: 'redis cluster', make: async () => createRedisStore({ urls: cluster!.urls, prefix: `t${Math.random().toString(36).slice(2)}:` }) })
}

beforeAll(async () => {
  if (runRedisTests) [redis, cluster] = await Promise.all([startRedis(), startRedisCluster()])
}, 30_000)
afterAll(async () => {
  await redis?.stop()
  await cluster?.stop()
})

// Redis expires keys on its own clock: stay near real time
const T0 = Date.now()
const keys = teamKeys('a')
const counter = (id: string, limit: number, extra: Partial<BudgetCounterSpec> = {}): BudgetCounterSpec => ({
  key: keys.counter('key', id, 'day', windowAt('day', T0)),
  limitNanos: limit,
  shadow: false,
  expireAt: 0,
  ...extra
})
const base = { reservations: keys.reservations, index: keys.index }

describe('budget store keys', () => {
  it('encode a team and an id so braces, | and : cannot change the layout (the Cluster hash tag stays one team)', () => {
    const keys = teamKeys('a{b}|c:d')
    expect(keys.reservations).toBe('budget:{a%7Bb%7D%7Cc%3Ad}:res')
    const span = windowAt('day', Date.UTC(2026, 0, 2))
    const counter = keys.counter('session', 's:1|x{y}', 'day', span)
    expect(counter).toBe(`budget:{a%7Bb%7D%7Cc%3Ad}:c:session:day:${span.label}:s%3A1%7Cx%7By%7D`)
    expect(parseCounterKey(counter)).toEqual({ scope: 'session', window: 'day', label: span.label, id: 's:1|x{y}' })
  })
})

describe.each(stores)('budget operations on the $name store', ({ make }) => {
  let store: Store
  beforeAll(async () => {
    store = await make()
  })
  afterAll(() => store.close())

  it('reserves against every counter or none, and settles the actual cost', async () => {
    const a = counter('k1', 100)
    const b = counter('k2', 1000)
    const r1 = await store.reserveBudget({ ...base, id: 'r1', amountNanos: 60, counters: [a, b], now: T0, ttlMs: 60_000 })
    expect(r1.ok).toBe(true)
    const r2 = await store.reserveBudget({ ...base, id: 'r2', amountNanos: 60, counters: [b, a], now: T0, ttlMs: 60_000 })
    expect(r2).toMatchObject({ ok: false, refused: 1 })
    // nothing was taken from b by the refused reservation
    expect((await store.readBudgets({ ...base, now: T0, counters: [b.key] }))[0]).toMatchObject({ spentNanos: 0, reservedNanos: 60 })
    const s = await store.settleBudget({ ...base, id: 'r1', actualNanos: 25, counters: [a, b], now: T0 })
    expect(s.status).toBe('settled')
    expect(s.counters).toEqual([
      { key: a.key, spentNanos: 25, reservedNanos: 0 },
      { key: b.key, spentNanos: 25, reservedNanos: 0 }
    ])
    // settling twice charges nothing more
    expect((await store.settleBudget({ ...base, id: 'r1', actualNanos: 25, counters: [a, b], now: T0 })).status).toBe('expired')
    expect((await store.reserveBudget({ ...base, id: 'r3', amountNanos: 75, counters: [a], now: T0, ttlMs: 60_000 })).ok).toBe(true)
    expect((await store.releaseBudget({ ...base, id: 'r3', counters: [a], now: T0 })).status).toBe('released')
    expect((await store.readBudgets({ ...base, now: T0, counters: [a.key] }))[0]).toMatchObject({ spentNanos: 25, reservedNanos: 0 })
  })

  it('lets shadow counters count past their limit without refusing', async () => {
    const sh = counter('shadow', 10, { shadow: true })
    const r = await store.reserveBudget({ ...base, id: 's1', amountNanos: 50, counters: [sh], now: T0, ttlMs: 60_000 })
    expect(r.ok).toBe(true)
    await store.settleBudget({ ...base, id: 's1', actualNanos: 40, counters: [sh], now: T0 })
    expect((await store.readBudgets({ ...base, now: T0, counters: [sh.key] }))[0]!.spentNanos).toBe(40)
  })

  it('charges an orphaned reservation its worst case once its TTL has passed', async () => {
    const c = counter('orphan', 1000)
    await store.reserveBudget({ ...base, id: 'o1', amountNanos: 300, counters: [c], now: T0, ttlMs: 1000 })
    expect((await store.readBudgets({ ...base, now: T0 + 999, counters: [c.key] }))[0]).toMatchObject({ spentNanos: 0, reservedNanos: 300 })
    expect((await store.readBudgets({ ...base, now: T0 + 1000, counters: [c.key] }))[0]).toMatchObject({ spentNanos: 300, reservedNanos: 0 })
    // the late settlement of a swept reservation adds nothing: the worst case was charged already
    const late = await store.settleBudget({ ...base, id: 'o1', actualNanos: 100, counters: [c], now: T0 + 2000 })
    expect(late.status).toBe('expired')
    expect(late.counters[0]!.spentNanos).toBe(300)
  })

  it('charges orphaned reservations whatever order their TTLs run out in', async () => {
    // a shorter TTL opened after a longer one: a sweep that stopped at the first open reservation would miss it
    const c = counter('orphans', 10_000)
    await store.reserveBudget({ ...base, id: 'long', amountNanos: 100, counters: [c], now: T0, ttlMs: 10_000 })
    await store.reserveBudget({ ...base, id: 'short', amountNanos: 20, counters: [c], now: T0 + 1, ttlMs: 1000 })
    await store.reserveBudget({ ...base, id: 'mid', amountNanos: 3, counters: [c], now: T0 + 2, ttlMs: 5000 })
    const at = async (t: number) => (await store.readBudgets({ ...base, now: T0 + t, counters: [c.key] }))[0]
    expect(await at(1000)).toMatchObject({ spentNanos: 0, reservedNanos: 123 })
    expect(await at(1001)).toMatchObject({ spentNanos: 20, reservedNanos: 103 })
    // a reserve sweeps too
    await store.reserveBudget({ ...base, id: 'next', amountNanos: 1000, counters: [c], now: T0 + 5002, ttlMs: 60_000 })
    expect(await at(5002)).toMatchObject({ spentNanos: 23, reservedNanos: 1100 })
    expect((await store.settleBudget({ ...base, id: 'long', actualNanos: 7, counters: [c], now: T0 + 5003 })).status).toBe('settled')
    expect((await store.settleBudget({ ...base, id: 'next', actualNanos: 9, counters: [c], now: T0 + 5004 })).counters[0]).toMatchObject({ spentNanos: 39, reservedNanos: 0 })
  })

  it('fires each alert threshold once per counter and resets spend without touching reservations', async () => {
    const c = counter('alerts', 1000, { alertAt: [0.5, 0.8] })
    const spend = async (id: string, n: number) => {
      await store.reserveBudget({ ...base, id, amountNanos: n, counters: [c], now: T0, ttlMs: 60_000 })
      return (await store.settleBudget({ ...base, id, actualNanos: n, counters: [c], now: T0 })).alerts
    }
    expect(await spend('a1', 400)).toEqual([])
    expect(await spend('a2', 200)).toEqual([{ counter: 0, threshold: 0.5 }])
    expect(await spend('a3', 100)).toEqual([])
    expect(await spend('a4', 150)).toEqual([{ counter: 0, threshold: 0.8 }])
    expect(await spend('a5', 10)).toEqual([])
    await store.reserveBudget({ ...base, id: 'a6', amountNanos: 50, counters: [c], now: T0, ttlMs: 60_000 })
    await store.resetBudgets([c.key])
    expect((await store.readBudgets({ ...base, now: T0, counters: [c.key] }))[0]).toMatchObject({ spentNanos: 0, reservedNanos: 50 })
    expect(await spend('a7', 600)).toEqual([{ counter: 0, threshold: 0.5 }])
  })

  it('charges without a reservation when admission went ahead with the store away', async () => {
    const c = counter('allow', 1000, { expireAt: T0 + 86_400_000 })
    const s = await store.settleBudget({ ...base, id: 'never-reserved', actualNanos: 70, counters: [c], now: T0, chargeWithoutReservation: true })
    expect(s).toMatchObject({ status: 'charged', counters: [{ spentNanos: 70, reservedNanos: 0 }] })
  })

  it('lists the live counters of a team', async () => {
    const listed = await store.readBudgets({ ...base, now: T0 })
    expect(listed.map((s) => s.key)).toContain(counter('k1', 1).key)
  })

  it('never lets concurrent reservations pass the limit', async () => {
    const c = counter('race', 1000)
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => store.reserveBudget({ ...base, id: `race${i}`, amountNanos: 7, counters: [c], now: T0, ttlMs: 60_000 })))
    expect(results.filter((r) => r.ok)).toHaveLength(142)
    expect((await store.readBudgets({ ...base, now: T0, counters: [c.key] }))[0]!.reservedNanos).toBe(994)
  })

  it('takes from token buckets all or nothing, refills them over time, and allows corrections into debt', async () => {
    const rpm = { key: 'ratelimit:{a}:key:rpm:k1', capacity: 3, windowMs: 60_000, cost: 1 }
    const tpm = { key: 'ratelimit:{a}:key:tpm:k1', capacity: 100, windowMs: 60_000, cost: 40 }
    expect(await store.rateLimit({ buckets: [rpm, tpm], now: T0 })).toMatchObject({ allowed: true, remaining: [2, 60] })
    expect(await store.rateLimit({ buckets: [rpm, tpm], now: T0 })).toMatchObject({ allowed: true, remaining: [1, 20] })
    const refused = await store.rateLimit({ buckets: [rpm, tpm], now: T0 })
    // 20 tokens left, 40 wanted: 20 more take 12 s at 100 per minute
    expect(refused).toMatchObject({ allowed: false, denied: 1, retryAfterMs: 12_000 })
    expect((await store.rateLimit({ buckets: [rpm], now: T0 })).remaining).toEqual([0])
    expect((await store.rateLimit({ buckets: [rpm, tpm], now: T0 + 12_000 })).allowed).toBe(false) // rpm empty: 1 per 20 s
    expect(await store.rateLimit({ buckets: [rpm, tpm], now: T0 + 20_000 })).toMatchObject({ allowed: true })
    expect((await store.rateLimit({ buckets: [{ ...tpm, cost: 101 }], now: T0 + 20_000 })).retryAfterMs).toBe(-1)
    const debt = await store.rateLimit({ buckets: [{ ...tpm, cost: 50 }], now: T0 + 20_000, force: true })
    expect(debt.allowed).toBe(true)
    expect(debt.remaining[0]).toBeLessThan(0)
  })
})
