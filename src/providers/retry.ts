import { GatewayError, UpstreamError } from '../errors.js'

export interface BackoffPolicy {
  base_ms: number
  max_ms: number
  /** An upstream Retry-After longer than this is not waited for. */
  max_retry_after_ms: number
}

/**
 * Whether an error is worth trying again on the same target: 429, 5xx, timeouts and connection errors.
 * Client aborts and request errors (400, context length) are not.
 *
 * @example
 * isRetryable(new UpstreamError(503, 'overloaded')) // true
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof UpstreamError) return err.retryable && err.kind !== 'aborted' && err.kind !== 'context_length'
  return false
}

/**
 * The wait before retry number `retry` (0-based): full-jitter exponential backoff (AWS's "full jitter":
 * uniform in [0, min(max, base·2^retry)]), or the upstream's Retry-After when it gave one. Returns
 * undefined when Retry-After asks for longer than the bound: the caller should move on rather than wait.
 *
 * @example
 * backoffDelay(1, { base_ms: 200, max_ms: 5000, max_retry_after_ms: 10000 }) // somewhere in [0, 400]
 */
export function backoffDelay(retry: number, policy: BackoffPolicy, retryAfterMs?: number, random: () => number = Math.random): number | undefined {
  if (retryAfterMs !== undefined) return retryAfterMs > policy.max_retry_after_ms ? undefined : retryAfterMs
  const cap = Math.min(policy.max_ms, policy.base_ms * 2 ** retry)
  return Math.round(random() * cap)
}

/** The Retry-After an error carries, if any (UpstreamError parses the upstream header). */
export function retryAfterOf(err: unknown): number | undefined {
  return err instanceof UpstreamError ? err.retryAfterMs : undefined
}

/**
 * Sleep that ends early (rejecting) when the request is aborted, so a client that leaves does not keep a
 * retry loop alive.
 *
 * @example
 * await sleepUnlessAborted(250, ctx.signal)
 */
export function sleepUnlessAborted(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(abortError())
  if (ms <= 0) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(abortError())
    }
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

function abortError(): GatewayError {
  return new UpstreamError(499, 'Client closed the request', { kind: 'aborted', retryable: false, code: 'client_closed' })
}
