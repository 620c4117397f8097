import type { LedgerEntry, LedgerFilter } from '../ledger/types.js'

/**
 * Shared state behind one small interface: the in-memory default for one machine, Redis for many
 * gateway instances. Every method is atomic on its own; multi-key atomic operations (budget
 * reservations, rate limits) are single methods so Redis can run them as one Lua script.
 *
 * Keys are given without the store's prefix; the store adds it.
 */
export interface Store extends BudgetStore {
  readonly kind: 'memory' | 'redis'

  /** Durable state (never evicted): counters, session state. */
  get(key: string): Promise<string | null>
  set(key: string, value: string, ttlMs?: number): Promise<void>
  del(key: string): Promise<void>
  /**
   * Atomic float increment; creates the key at 0. The TTL is set only when the key is new, or on every increment
   * with `slide` (an idle expiry: the key lives `ttlMs` past its last increment).
   */
  incrBy(key: string, amount: number, ttlMs?: number, slide?: boolean): Promise<number>

  /** Cache namespace: may be evicted (memory: LRU bounded by bytes; Redis: TTL). */
  cacheGet(key: string): Promise<string | null>
  cacheSet(key: string, value: string, ttlMs: number): Promise<void>

  /** Ledger: append-only entries, plus running aggregates kept by the store. */
  appendLedger(entries: LedgerEntry[]): Promise<void>
  queryLedger(filter: LedgerFilter): Promise<LedgerEntry[]>

  /**
   * Whether no request's command awaits a reply (Redis; absent for the in-process store; cache writes and ledger
   * appends in flight, which nobody waits on, do not count): a round trip started now is pure waiting, where under
   * load it would share its write and its reply's wake-up with other requests' commands.
   */
  idle?(): boolean

  /** Throws when the backing service cannot be reached. */
  ping(): Promise<void>
  close(): Promise<void>
}

/**
 * Budget and rate-limit operations: each is one atomic step (one Lua script on Redis). Amounts are integer
 * nano-USD so counters never drift. Every key of one call shares a Redis Cluster hash slot (`{team}` tag).
 */
export interface BudgetStore {
  /** Reserve `amountNanos` against every counter, or against none if a non-shadow counter would pass its limit. */
  reserveBudget(req: ReserveBudgetRequest): Promise<ReserveBudgetResult>
  /** Replace a reservation by the actual cost (or, with `chargeWithoutReservation`, charge one that was never made). */
  settleBudget(req: SettleBudgetRequest): Promise<SettleBudgetResult>
  /** Drop a reservation without charging anything. */
  releaseBudget(req: Omit<SettleBudgetRequest, 'actualNanos' | 'chargeWithoutReservation'>): Promise<SettleBudgetResult>
  /** Counters as they stand (expired reservations swept first); all live counters of the index when `counters` is absent. */
  readBudgets(req: { reservations: string; index: string; now: number; counters?: string[] }): Promise<BudgetCounterState[]>
  /** Zero the spend (and alert marks) of counters; in-flight reservations stay. */
  resetBudgets(counters: string[]): Promise<void>
  /** Token buckets: take `cost` from every bucket, or from none. `force` takes even into debt (post-hoc corrections). */
  rateLimit(req: RateLimitRequest): Promise<RateLimitResult>
}

export interface BudgetCounterSpec {
  key: string
  limitNanos: number
  /** Counts but never refuses. */
  shadow: boolean
  /** Epoch ms after which the counter may be deleted (window end plus a grace); 0 = never. */
  expireAt: number
  /** Alert thresholds (fractions of the limit) checked at settlement. */
  alertAt?: number[]
}

export interface ReserveBudgetRequest {
  /** Base key of the team's reservation records (a zset of expiries and a hash of amounts). */
  reservations: string
  /** Zset of the team's counters (for listing). */
  index: string
  id: string
  amountNanos: number
  counters: BudgetCounterSpec[]
  /** Epoch ms; reservations older than their expiry are swept (charged their worst case). */
  now: number
  ttlMs: number
}

export interface BudgetCounterState {
  key: string
  spentNanos: number
  reservedNanos: number
}

export interface ReserveBudgetResult {
  ok: boolean
  /** Index into `counters` of the first non-shadow counter that refused. */
  refused?: number
  /** States before this reservation. */
  counters: BudgetCounterState[]
}

export interface SettleBudgetRequest {
  reservations: string
  /** Zset of the team's counters (a charge without reservation may create one). */
  index: string
  id: string
  actualNanos: number
  counters: BudgetCounterSpec[]
  now: number
  /** Admission went ahead without a reservation (store was unreachable, `on_store_error: allow`). */
  chargeWithoutReservation?: boolean
}

export interface SettleBudgetResult {
  /** `expired`: the reservation had already been swept and charged its worst case; nothing more was charged. */
  status: 'settled' | 'charged' | 'expired' | 'released'
  /** States after settlement. */
  counters: BudgetCounterState[]
  /** Thresholds crossed for the first time in the counter's window. */
  alerts: { counter: number; threshold: number }[]
}

export interface RateLimitBucket {
  key: string
  capacity: number
  /** Time to refill from empty to full. */
  windowMs: number
  cost: number
}

export interface RateLimitRequest {
  buckets: RateLimitBucket[]
  now: number
  force?: boolean
}

export interface RateLimitResult {
  allowed: boolean
  /** Index of the bucket that refused with the longest wait. */
  denied?: number
  /** Wait until the refused request would fit; -1 when it never can (cost above capacity). */
  retryAfterMs?: number
  /** Tokens left in each bucket (after this take, when allowed). */
  remaining: number[]
}
