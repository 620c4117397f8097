import type { LedgerEntry, LedgerFilter } from '../ledger/types.js'
import { matchesLedgerFilter } from '../ledger/filter.js'
import type { Store } from './types.js'

export interface MemoryStoreOptions {
  /** Bytes the cache namespace may hold before least-recently-used entries are evicted. */
  maxCacheBytes?: number
  /** Ledger entries kept; the oldest are dropped beyond this. */
  maxLedgerEntries?: number
  /** Clock, for tests of windows and TTLs. */
  now?: () => number
}

interface Held {
  value: string
  expiresAt: number
}

/**
 * The embedded default: everything in this process. Durable state never evicts (budgets must not forget
 * spend); the cache namespace is an LRU bounded by bytes.
 *
 * @example
 * const store = createMemoryStore({ maxCacheBytes: 64 * 1024 * 1024 })
 * await store.incrBy('spend:team:research', 0.25)
 */
export function createMemoryStore(opts: MemoryStoreOptions = {}): Store & { readonly map: Map<string, Held> } {
  const now = opts.now ?? Date.now
  const maxCacheBytes = opts.maxCacheBytes ?? 64 * 1024 * 1024
  const maxLedger = opts.maxLedgerEntries ?? 100_000
  const map = new Map<string, Held>()
  const cache = new Map<string, Held>()
  let cacheBytes = 0
  let ledger: LedgerEntry[] = []

  const live = (m: Map<string, Held>, key: string): Held | undefined => {
    const held = m.get(key)
    if (!held) return undefined
    if (held.expiresAt !== 0 && held.expiresAt <= now()) {
      m.delete(key)
      if (m === cache) cacheBytes -= held.value.length + key.length
      return undefined
    }
    return held
  }

  return {
    kind: 'memory',
    map,
    async get(key) {
      return live(map, key)?.value ?? null
    },
    async set(key, value, ttlMs) {
      map.set(key, { value, expiresAt: ttlMs ? now() + ttlMs : 0 })
    },
    async del(key) {
      map.delete(key)
    },
    async incrBy(key, amount, ttlMs) {
      const held = live(map, key)
      const next = (held ? Number(held.value) : 0) + amount
      map.set(key, { value: String(next), expiresAt: held ? held.expiresAt : ttlMs ? now() + ttlMs : 0 })
      return next
    },
    async cacheGet(key) {
      const held = live(cache, key)
      if (!held) return null
      // refresh recency: Map keeps insertion order, so re-insert at the end
      cache.delete(key)
      cache.set(key, held)
      return held.value
    },
    async cacheSet(key, value, ttlMs) {
      const size = value.length + key.length
      if (size > maxCacheBytes) return
      const old = cache.get(key)
      if (old) {
        cacheBytes -= old.value.length + key.length
        cache.delete(key)
      }
      cache.set(key, { value, expiresAt: now() + ttlMs })
      cacheBytes += size
      for (const [k, v] of cache) {
        if (cacheBytes <= maxCacheBytes) break
        cache.delete(k)
        cacheBytes -= v.value.length + k.length
      }
    },
    async appendLedger(entries) {
      ledger.push(...entries)
      if (ledger.length > maxLedger) ledger = ledger.slice(ledger.length - maxLedger)
    },
    async queryLedger(filter: LedgerFilter) {
      const out: LedgerEntry[] = []
      const limit = filter.limit ?? Infinity
      for (let i = ledger.length - 1; i >= 0 && out.length < limit; i--) {
        if (matchesLedgerFilter(ledger[i]!, filter)) out.push(ledger[i]!)
      }
      return out.reverse()
    },
    async ping() {},
    async close() {}
  }
}
