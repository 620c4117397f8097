import type { LedgerEntry, LedgerFilter } from '../ledger/types.js'

/**
 * Shared state behind one small interface: the in-memory default for one machine, Redis for many
 * gateway instances. Every method is atomic on its own; multi-key atomic operations (budget
 * reservations, rate limits) are single methods so Redis can run them as one Lua script.
 *
 * Keys are given without the store's prefix; the store adds it.
 */
export interface Store {
  readonly kind: 'memory' | 'redis'

  /** Durable state (never evicted): counters, session state. */
  get(key: string): Promise<string | null>
  set(key: string, value: string, ttlMs?: number): Promise<void>
  del(key: string): Promise<void>
  /** Atomic float increment; creates the key at 0. The TTL is set only when the key is new. */
  incrBy(key: string, amount: number, ttlMs?: number): Promise<number>

  /** Cache namespace: may be evicted (memory: LRU bounded by bytes; Redis: TTL). */
  cacheGet(key: string): Promise<string | null>
  cacheSet(key: string, value: string, ttlMs: number): Promise<void>

  /** Ledger: append-only entries, plus running aggregates kept by the store. */
  appendLedger(entries: LedgerEntry[]): Promise<void>
  queryLedger(filter: LedgerFilter): Promise<LedgerEntry[]>

  /** Throws when the backing service cannot be reached. */
  ping(): Promise<void>
  close(): Promise<void>
}
