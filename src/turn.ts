/**
 * Work that follows a request without its answer waiting for it (a cache write: serialised entry to the store,
 * embedding and index insert on the semantic layer), run at the end of the event-loop turn, all of the turn's
 * together.
 *
 * Why at the turn's end: an answer is written in the microtasks of the I/O callback that finished it. Work
 * started there ran before the answer's own continuation reached the socket, and interleaved with the next
 * request's steps; in the turn's immediates it runs after every answer of the turn has been written, back to back.
 * Pinned, on the bench's misses with the semantic layer, that took 66–94 µs off a request (README, Performance).
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
 * work queued in the turn, in order. One immediate per turn, however many are queued.
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
