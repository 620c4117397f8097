import type { Writable } from 'node:stream'

const coalesced = new WeakSet<Writable>()

/**
 * Makes a Redis connection send the commands written in one tick as one write: the socket is corked at the
 * first write of a tick and uncorked before the event loop moves on (`process.nextTick` runs once the current
 * microtasks have drained, so commands issued by many requests' continuations in one drain go out together).
 *
 * Not ioredis' `enableAutoPipelining`: that defers to `setImmediate` and keeps one pipeline in flight per
 * node, so a command waits for the previous batch's replies (at 1,000 rps on the bench: p50 +0.6–1.2 ms,
 * p99 ×2–4). Here nothing waits: batches overlap like plain commands, only the syscalls are shared.
 *
 * @example
 * client.on('connect', () => coalesceWrites(client.stream))
 */
export function coalesceWrites(socket: Writable): void {
  if (coalesced.has(socket)) return
  coalesced.add(socket)
  const write = socket.write
  let corked = false
  const uncork = () => {
    corked = false
    socket.uncork()
  }
  socket.write = function (this: Writable, ...args: unknown[]) {
    if (!corked) {
      corked = true
      socket.cork()
      process.nextTick(uncork)
    }
    return (write as (...a: unknown[]) => boolean).apply(this, args)
  } as Writable['write']
}
