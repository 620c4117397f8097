/**
 * Whether a request was given up (the client left, the gateway is shutting down), and a way to hear of it.
 *
 * An AbortController's work without making an AbortSignal on the request path: on Node 20 making one costs
 * about 5 µs and adding and removing a listener about 5 more, which every upstream call paid to hear about
 * a client that almost never leaves. `onAbort` keeps its listeners in an array; `signal` is a real
 * AbortSignal for the callers that need one (the local model, a model embedder), made on first read and
 * aborted with the request.
 */
export interface RequestAbort {
  readonly aborted: boolean
  /** Why, once aborted (a DOMException `AbortError` when no reason was given, as AbortController does). */
  readonly reason: unknown
  /** A real AbortSignal that follows this one; made on first read. */
  readonly signal: AbortSignal
  /**
   * Calls `listener` once when the request is aborted; returns the function that takes it off again. A listener
   * added after the abort is not called: read `aborted` first.
   */
  onAbort(listener: () => void): () => void
}

/** The side that aborts: the route (client disconnect) and the gateway (shutdown). */
export interface RequestAbortController extends RequestAbort {
  abort(reason?: unknown): void
}

/**
 * A request's abort, aborted by calling `abort`.
 *
 * @example
 * const abort = createRequestAbort()
 * const off = abort.onAbort(() => upstream.destroy())
 * res.once('close', () => abort.abort('client closed'))
 */
export function createRequestAbort(): RequestAbortController {
  return new RequestAbortState()
}

/**
 * A class rather than an object literal with getters and closures: V8 builds such a literal through its slow
 * runtime path (about 10 µs per request on a cold CPU, profiled), a class instance with a few field writes.
 */
class RequestAbortState implements RequestAbortController {
  aborted = false
  reason: unknown = undefined
  #controller: AbortController | undefined = undefined
  #listeners: (() => void)[] | undefined = undefined

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController()
      if (this.aborted) this.#controller.abort(this.reason)
    }
    return this.#controller.signal
  }

  onAbort(listener: () => void): () => void {
    if (this.aborted) return noop
    const listeners = (this.#listeners ??= [])
    listeners.push(listener)
    return () => {
      const at = listeners.indexOf(listener)
      if (at >= 0) listeners.splice(at, 1)
    }
  }

  abort(why?: unknown): void {
    if (this.aborted) return
    this.aborted = true
    this.reason = why === undefined ? new DOMException('This operation was aborted', 'AbortError') : why
    this.#controller?.abort(this.reason)
    const called = this.#listeners
    this.#listeners = undefined
    if (called) for (const l of called) l()
  }
}

/**
 * A RequestAbort over an AbortSignal someone else owns (Hono's request signal where there is no Node request,
 * tests). `onAbort` subscribes to the signal itself.
 *
 * @example
 * createContext({ ..., abort: abortFromSignal(c.req.raw.signal) })
 */
export function abortFromSignal(signal: AbortSignal): RequestAbort {
  return new SignalAbort(signal)
}

/** A class for the reason RequestAbortState is one. */
class SignalAbort implements RequestAbort {
  constructor(readonly signal: AbortSignal) {}

  get aborted(): boolean {
    return this.signal.aborted
  }

  get reason(): unknown {
    return this.signal.reason
  }

  onAbort(listener: () => void): () => void {
    const signal = this.signal
    if (signal.aborted) return noop
    signal.addEventListener('abort', listener, { once: true })
    return () => signal.removeEventListener('abort', listener)
  }
}

const noop = () => {}
