/**
 * What a gateway does at the end of an event-loop turn: first it hands the server the answers that became ready
 * in the turn, together (`releasePerTurn`); background work that follows a request (cache writes) runs after
 * them (`afterAnswers`).
 *
 * Why together: under load one turn finishes the answers of many connections. Written one by one, between the
 * work of other requests, each write finds the client asleep again and pays the kernel's wake-up; written back
 * to back, the first wakes it and the others find it awake, and its next requests come back in a burst too. With
 * one request in a turn (no load) the answer leaves at the end of the same turn, as it did.
 */

let waiting: ((res: Response) => void)[] = []
let ready: Response[] = []

function release(): void {
  const w = waiting
  const r = ready
  waiting = []
  ready = []
  for (let i = 0; i < w.length; i++) w[i]!(r[i]!)
}

function hold(res: Response): Promise<Response> {
  return new Promise((resolve) => {
    if (waiting.length === 0) setImmediate(release)
    waiting.push(resolve)
    ready.push(res)
  })
}

/**
 * A fetch handler whose answers are handed to the HTTP server at the end of the turn in which they were ready,
 * all of that turn's at once (an immediate: after the turn's I/O callbacks, before its timers).
 *
 * @example
 * serve({ fetch: releasePerTurn(app.fetch), port: 8080 })
 */
export function releasePerTurn<E>(fetch: (req: Request, env: E) => Response | Promise<Response>): (req: Request, env: E) => Promise<Response> {
  return (req, env) => {
    const res = fetch(req, env)
    return res instanceof Promise ? res.then(hold) : hold(res)
  }
}

let later: (() => void)[] = []
let armed = false

function runLater(): void {
  const l = later
  later = []
  for (const fn of l) fn()
}

/**
 * Runs `fn` after the answers of this turn have been written: in the next turn's immediates. An immediate of
 * this turn would run before the answers' release when it was queued first (a cache write is queued before its
 * request's answer is ready), and the answer would wait for it.
 *
 * @example
 * afterAnswers(() => void writeCacheEntry())
 */
export function afterAnswers(fn: () => void): void {
  later.push(fn)
  if (armed) return
  armed = true
  setImmediate(() => {
    armed = false
    setImmediate(runLater)
  })
}
