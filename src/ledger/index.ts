import type { Store } from '../store/types.js'
import type { LedgerEntry } from './types.js'

export interface LedgerOptions {
  /** Entries held in memory while the store is unreachable; beyond this the oldest are dropped (and counted). */
  maxBuffered?: number
  /** How often a failed write is retried. */
  retryMs?: number
  onError?: (err: unknown) => void
}

/** Writes ledger entries to the store, batched per tick, buffered and replayed while the store is away. */
export interface Ledger {
  record(entry: LedgerEntry): void
  /**
   * Add to a session's running total and return it (for `x-sluice-session-cost-usd`); with `idleMs`, the total
   * is forgotten that long after its last addition (`sessions.idle_ttl_s`).
   */
  addSessionCost(team: string, session: string, usd: number, idleMs?: number): Promise<number>
  sessionCost(team: string, session: string): Promise<number>
  /** Write everything pending; used on shutdown. Resolves when written or when the store stays unreachable. */
  flush(): Promise<void>
  /** Entries waiting for the store. */
  pending(): number
  dropped(): number
}

/**
 * @example
 * const ledger = createLedger(store)
 * ledger.record(entry)      // returns at once; written on the next tick
 * await ledger.flush()      // on shutdown
 */
export function createLedger(store: Store, opts: LedgerOptions = {}): Ledger {
  const maxBuffered = opts.maxBuffered ?? 50_000
  const retryMs = opts.retryMs ?? 1000
  let queue: LedgerEntry[] = []
  let dropped = 0
  let scheduled = false
  let writing: Promise<void> | undefined
  let retryTimer: NodeJS.Timeout | undefined

  const write = async (): Promise<void> => {
    scheduled = false
    if (writing || queue.length === 0) return writing
    const batch = queue
    queue = []
    writing = store
      .appendLedger(batch)
      .catch((err) => {
        // keep the order: failed entries go back in front of newer ones
        queue = batch.concat(queue)
        if (queue.length > maxBuffered) {
          dropped += queue.length - maxBuffered
          queue = queue.slice(queue.length - maxBuffered)
        }
        opts.onError?.(err)
        if (!retryTimer) {
          retryTimer = setTimeout(() => {
            retryTimer = undefined
            void write()
          }, retryMs)
          retryTimer.unref()
        }
      })
      .finally(() => {
        writing = undefined
        if (queue.length > 0 && !retryTimer) schedule()
      })
    return writing
  }

  const schedule = () => {
    if (scheduled) return
    scheduled = true
    setImmediate(write)
  }

  const sessionKey = (team: string, session: string) => `spend:session:${team}:${session}`

  return {
    record(entry) {
      queue.push(entry)
      schedule()
    },
    addSessionCost: (team, session, usd, idleMs) => store.incrBy(sessionKey(team, session), usd, idleMs || undefined, true),
    async sessionCost(team, session) {
      return Number((await store.get(sessionKey(team, session))) ?? 0)
    },
    async flush() {
      for (let i = 0; i < 3 && (queue.length > 0 || writing); i++) {
        await writing
        await write()
      }
    },
    pending: () => queue.length,
    dropped: () => dropped
  }
}
