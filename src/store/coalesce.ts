import type { Writable } from 'node:stream'

/**
 * How long a Redis connection holds commands to send them together:
 * - `turn` (the default): every command waits until the end of the event-loop turn (`setImmediate`, after the
 *   turn's I/O callbacks), so all requests handled in that turn share one write: the least CPU on both sides.
 *   Replies are read in the next turn's poll either way, so a command loses only the overlap of Redis's work with
 *   the rest of the turn (README, Budgets, "Redis", has the measurements).
 * - `tick`: until the end of the tick that issued them (`process.nextTick`, once the current microtasks have
 *   drained): a request's commands never wait for other requests' work. Commands issued through
 *   `writeInBackground` (cache writes, ledger appends: nobody waits on them to answer a client) wait for the turn.
 */
export type WriteBatching = 'tick' | 'turn'

const coalesced = new WeakSet<Writable>()
/** Set while `writeInBackground` runs its function. */
let background = false

/**
 * Makes a Redis connection send the commands written within one batching window as one write: the socket is
 * corked at the first write and uncorked when the window ends. A command that may not wait for the turn
 * (foreground, in `tick` batching) written while background commands are held takes them along at the end of
 * its tick. Commands issued by many requests' continuations in one window go out together, and Redis reads
 * them in one go.
 *
 * Not ioredis' `enableAutoPipelining`: that defers to `setImmediate` and keeps one pipeline in flight per
 * node, so a command waits for the previous batch's replies (at 1,000 rps on the bench: p50 +0.6–1.2 ms,
 * p99 ×2–4). Here nothing waits on replies: batches overlap like plain commands, only the syscalls are shared.
 *
 * @example
 * client.on('connect', () => coalesceWrites(client.stream, 'turn'))
 */
export function coalesceWrites(socket: Writable, batching: WriteBatching = 'turn'): void {
  if (coalesced.has(socket)) return
  coalesced.add(socket)
  const write = socket.write
  let corked = false
  /** Held for the end of the turn: a foreground write in `tick` batching brings the flush forward. */
  let untilTurn = false
  const uncork = () => {
    // one uncork per cork: a flush brought forward leaves the turn's scheduled one with nothing to do
    if (!corked) return
    corked = false
    untilTurn = false
    socket.uncork()
  }
  socket.write = function (this: Writable, ...args: unknown[]) {
    const waitsForTurn = background || batching === 'turn'
    if (!corked) {
      corked = true
      untilTurn = waitsForTurn
      socket.cork()
      if (waitsForTurn) setImmediate(uncork)
      else process.nextTick(uncork)
    } else if (untilTurn && !waitsForTurn) {
      untilTurn = false
      process.nextTick(uncork)
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args)
  } as Writable['write']
}

/**
 * Runs `send`, which issues Redis commands, with its writes held until the end of the event-loop turn on
 * connections that `coalesceWrites` manages. For commands whose reply nobody waits on to answer a client.
 *
 * @example
 * await writeInBackground(() => client.set(key, value, 'PX', ttlMs))
 */
export function writeInBackground<T>(send: () => T): T {
  background = true
  try {
    return send()
  } finally {
    background = false
  }
}
