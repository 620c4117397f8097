import { UpstreamError } from '../../errors.js'

/** A slot on loan from a {@link SlotPool}; call `release` exactly once. */
export interface SlotLease<T> {
  slot: T
  release(): void
}

/** A fixed set of slots handed out first-come, first-served. */
export interface SlotPool<T> {
  /** Wait for a free slot; rejects with an `aborted` UpstreamError when `signal` fires while queued. */
  acquire(signal: AbortSignal): Promise<SlotLease<T>>
  /** Requests waiting for a slot. */
  queued(): number
  /** Slots on loan. */
  active(): number
}

/**
 * A FIFO pool over fixed slots (context sequences): at most `slots.length` holders, the rest wait in order.
 *
 * @example
 * const pool = createSlotPool([seqA, seqB])
 * const lease = await pool.acquire(signal)
 * try { await use(lease.slot) } finally { lease.release() }
 */
export function createSlotPool<T>(slots: readonly T[]): SlotPool<T> {
  const free = [...slots]
  const waiters: { grant: (slot: T) => void }[] = []

  const lease = (slot: T): SlotLease<T> => {
    let released = false
    return {
      slot,
      release() {
        if (released) return
        released = true
        const next = waiters.shift()
        if (next) next.grant(slot)
        else free.push(slot)
      }
    }
  }

  return {
    acquire(signal) {
      if (signal.aborted) return Promise.reject(abortedError())
      const slot = free.shift()
      if (slot !== undefined) return Promise.resolve(lease(slot))
      return new Promise((resolve, reject) => {
        const waiter = {
          grant: (s: T) => {
            signal.removeEventListener('abort', onAbort)
            resolve(lease(s))
          }
        }
        const onAbort = () => {
          const i = waiters.indexOf(waiter)
          if (i >= 0) waiters.splice(i, 1)
          reject(abortedError())
        }
        signal.addEventListener('abort', onAbort, { once: true })
        waiters.push(waiter)
      })
    },
    queued: () => waiters.length,
    active: () => slots.length - free.length
  }
}

export function abortedError(): UpstreamError {
  return new UpstreamError(499, 'Client closed the request', { kind: 'aborted', retryable: false, code: 'client_closed' })
}
