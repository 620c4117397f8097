import { describe, expect, it } from 'vitest'
import type { LedgerEntry } from '../src/ledger/types.js'
import { createMemoryStore } from '../src/store/memory.js'

const entry = (id: string, team = 'a'): LedgerEntry => ({
  id, request_id: `r-${id}`, ts: 1000, team, key_id: 'abc', alias: 'gpt-4o-mini', model: 'openai/gpt-4o-mini', provider: 'openai',
  surface: 'chat', stream: false, status: 'ok', tokens: { input: 1, output: 1, cached_input: 0, cache_write: 0 }, estimated: false,
  cost_usd: 0.001, latency_ms: 1, attempt: 1
})

describe('memory store ledger (a ring of the newest entries)', () => {
  it('keeps the newest maxLedgerEntries in order across many wraps', async () => {
    const store = createMemoryStore({ maxLedgerEntries: 5 })
    await store.appendLedger([entry('0'), entry('1')])
    expect((await store.queryLedger({})).map((e) => e.id)).toEqual(['0', '1'])
    for (let i = 2; i < 23; i++) await store.appendLedger([entry(String(i), i % 2 ? 'b' : 'a')])
    expect((await store.queryLedger({})).map((e) => e.id)).toEqual(['18', '19', '20', '21', '22'])
    expect((await store.queryLedger({ limit: 2 })).map((e) => e.id)).toEqual(['21', '22'])
    expect((await store.queryLedger({ team: 'b' })).map((e) => e.id)).toEqual(['19', '21'])
    // a batch larger than the ring keeps its own newest
    await store.appendLedger(Array.from({ length: 7 }, (_, i) => entry(`x${i}`)))
    expect((await store.queryLedger({})).map((e) => e.id)).toEqual(['x2', 'x3', 'x4', 'x5', 'x6'])
  })
})

describe('memory store exact cache (an LRU bounded by bytes)', () => {
  it('evicts the least recently read entries past max_cache_bytes, skips an entry larger than the bound, expires by TTL', async () => {
    let now = 1_000
    // each entry: a 2-character key + 8 characters = 10 "bytes"; 30 hold three
    const store = createMemoryStore({ maxCacheBytes: 30, now: () => now })
    const v = (c: string) => c.repeat(8)
    await store.cacheSet('k1', v('a'), 60_000)
    await store.cacheSet('k2', v('b'), 60_000)
    await store.cacheSet('k3', v('c'), 60_000)
    expect(await store.cacheGet('k1')).toBe(v('a')) // k2 is now the least recently used
    await store.cacheSet('k4', v('d'), 60_000)
    expect(await store.cacheGet('k2')).toBeNull()
    expect([await store.cacheGet('k1'), await store.cacheGet('k3'), await store.cacheGet('k4')]).toEqual([v('a'), v('c'), v('d')])
    // replacing an entry counts its new size once: a 2 + 18 entry leaves room for one of the others
    await store.cacheSet('k3', 'x'.repeat(18), 60_000)
    expect(await store.cacheGet('k3')).toBe('x'.repeat(18))
    expect(await store.cacheGet('k1')).toBeNull()
    expect(await store.cacheGet('k4')).toBe(v('d'))
    // larger than the whole bound: not stored, nothing evicted for it
    await store.cacheSet('big', 'y'.repeat(40), 60_000)
    expect(await store.cacheGet('big')).toBeNull()
    expect(await store.cacheGet('k4')).toBe(v('d'))
    // past its TTL an entry is gone, and its bytes with it
    now += 60_001
    expect(await store.cacheGet('k4')).toBeNull()
    await store.cacheSet('k5', v('e'), 60_000)
    await store.cacheSet('k6', v('f'), 60_000)
    expect(await store.cacheGet('k5')).toBe(v('e'))
  })
})

describe('memory store expiry (entries nobody reads again)', () => {
  it('deletes expired keys, budget counters and rate-limit buckets without a read, a batch at a time, and keeps the rest', async () => {
    let now = 1_000
    const store = createMemoryStore({ now: () => now, sweepEveryMs: 0 })
    // a finished session's guard state, a day's budget counter, an idle user's bucket: never read again
    for (let i = 0; i < 7_000; i++) await store.set(`session:${i}`, '1', 60_000)
    await store.incrBy('kept', 1)
    await store.set('later', 'x', 120_000)
    const counters = [{ key: 'b:{a}:c:key:k:day:1', limitNanos: 1e12, shadow: false, expireAt: 50_000 }]
    await store.reserveBudget({ reservations: 'b:{a}:res', index: 'b:{a}:idx', id: 'r1', amountNanos: 10, counters, now, ttlMs: 10_000 })
    await store.settleBudget({ reservations: 'b:{a}:res', index: 'b:{a}:idx', id: 'r1', actualNanos: 5, counters, now })
    await store.rateLimit({ buckets: [{ key: 'rl:user:u1', capacity: 10, windowMs: 60_000, cost: 1 }], now })
    // 5,000 entries per map and step, resuming where the last step stopped: this one reads keys 0-4,999
    expect(store.sweepExpired()).toBe(0)
    now = 70_000
    // the rest of the keys (2,000 expired, 2 kept), the counter and the bucket; then a new pass begins
    expect(store.sweepExpired()).toBe(2_000 + 1 + 1)
    expect(store.map.size).toBe(5_002)
    expect(store.sweepExpired()).toBe(5_000)
    expect([...store.map.keys()].sort()).toEqual(['kept', 'later'])
    expect(await store.readBudgets({ reservations: 'b:{a}:res', index: 'b:{a}:idx', now, counters: [counters[0]!.key] })).toEqual([
      { key: counters[0]!.key, spentNanos: 0, reservedNanos: 0 }
    ])
    // later passes find the rest when it expires
    now = 200_000
    expect(store.sweepExpired()).toBe(1)
    expect([...store.map.keys()]).toEqual(['kept'])
  })

  it('looks on its own every sweepEveryMs and stops on close', async () => {
    let now = 1_000
    const store = createMemoryStore({ now: () => now, sweepEveryMs: 10 })
    await store.set('gone', '1', 5)
    now = 2_000
    await new Promise((r) => setTimeout(r, 40))
    expect(store.map.has('gone')).toBe(false)
    await store.close()
    await store.set('stays', '1', 5)
    now = 3_000
    await new Promise((r) => setTimeout(r, 40))
    expect(store.map.has('stays')).toBe(true)
  })
})
