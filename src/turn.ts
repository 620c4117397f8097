/**
 * Work that gains from running with the rest of its turn's: run at the end of the event-loop turn, all of the
 * turn's together. A miss's cache write (serialised entry to the store, the semantic index insert) follows its
 * answer there (`atTurnEnd`), and in a busy turn the semantic lookups wait for it too (`turnBusy`, `turnEnd`).
 *
 * Why: an answer is written in the microtasks of the I/O callback that finished it. Work started there ran before
 * the answer's own continuation reached the socket, and between the other requests' steps; the semantic index's
 * scattered reads and writes then evicted their working set each time. At the turn's end it runs after every
 * answer of the turn has been written, back to back. Pinned, on the bench's misses, the writes took 52 µs off a
 * request, and the lookups 56 µs more where traffic spans several scopes (README, Performance).
 */

let later: (() => void)[] = []
let armed = false

function runLater(): void {
  armed = false
  const queued = later
  later = []
  for (const fn of queued) fn()
}

/**
 * Runs `fn` in this turn's immediates, after the I/O callbacks (and so the answers) of the turn, with the other
 * work queued in the turn, in order. One immediate per turn, however many are queued. `fn` must not throw (start
 * async work in it and handle its rejection there): a throw would skip the rest of the turn's.
 *
 * @example
 * atTurnEnd(() => void store.cacheSet(key, entry, ttlMs))
 */
export function atTurnEnd(fn: () => void): void {
  later.push(fn)
  if (armed) return
  armed = true
  setImmediate(runLater)
}

let ending: Promise<void> | undefined

/** Whether work is queued for this turn's end: the turn is busy, and a lookup may as well join it there. */
export function turnBusy(): boolean {
  return armed
}

/**
 * Resolves at this turn's end, after the work queued with `atTurnEnd` before it: one promise for every caller of
 * the turn.
 *
 * @example
 * await turnEnd() // then search the semantic index, with the turn's other lookups and after its writes
 */
export function turnEnd(): Promise<void> {
  return (ending ??= new Promise<void>((resolve) =>
    atTurnEnd(() => {
      ending = undefined
      resolve()
    })
  ))
}
