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
  let aborted = false
  let reason: unknown
  let controller: AbortController | undefined
  let listeners: (() => void)[] | undefined
  return {
    get aborted() {
      return aborted
    },
    get reason() {
      return reason
    },
    get signal() {
      if (!controller) {
        controller = new AbortController()
        if (aborted) controller.abort(reason)
      }
      return controller.signal
    },
    onAbort(listener) {
      if (aborted) return noop
      ;(listeners ??= []).push(listener)
      return () => {
        const at = listeners?.indexOf(listener) ?? -1
        if (at >= 0) listeners!.splice(at, 1)
      }
    },
    abort(why) {
      if (aborted) return
      aborted = true
      reason = why === undefined ? new DOMException('This operation was aborted', 'AbortError') : why
      controller?.abort(reason)
      const called = listeners
      listeners = undefined
      if (called) for (const l of called) l()
    }
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
  return {
    get aborted() {
      return signal.aborted
    },
    get reason() {
      return signal.reason
    },
    signal,
    onAbort(listener) {
      if (signal.aborted) return noop
      signal.addEventListener('abort', listener, { once: true })
      return () => signal.removeEventListener('abort', listener)
    }
  }
}

const noop = () => {}
