/**
 * OpenAI-shaped errors. Every failure that reaches a client is one of these:
 * `{"error":{"message","type","param","code"}}` with the right HTTP status.
 *
 * @example
 * throw new GatewayError(404, 'Model "gpt-9" does not exist', { type: 'invalid_request_error', code: 'model_not_found', param: 'model' })
 */
export class GatewayError extends Error {
  readonly status: number
  readonly type: string
  readonly code: string | null
  readonly param: string | null
  /** Extra response headers (Retry-After, x-should-retry, x-ratelimit-*). */
  readonly headers: Record<string, string>

  constructor(
    status: number,
    message: string,
    opts: { type?: string; code?: string | null; param?: string | null; headers?: Record<string, string> } = {}
  ) {
    super(message)
    this.status = status
    this.type = opts.type ?? errorTypeFor(status)
    this.code = opts.code ?? null
    this.param = opts.param ?? null
    this.headers = opts.headers ?? {}
  }

  toJSON(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } }
  }
}

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null }
}

/**
 * An upstream provider answered with an error (or could not be reached).
 * `retryable` drives retries and fallbacks; `kind` lets routing pick a fallback (e.g. context length).
 */
export class UpstreamError extends GatewayError {
  readonly retryable: boolean
  readonly kind: 'http' | 'connect' | 'timeout' | 'protocol' | 'context_length' | 'rate_limit' | 'aborted'
  readonly retryAfterMs?: number

  constructor(
    status: number,
    message: string,
    opts: {
      type?: string
      code?: string | null
      param?: string | null
      kind?: UpstreamError['kind']
      retryable?: boolean
      retryAfterMs?: number
    } = {}
  ) {
    // a relayed 429/503 keeps the upstream's Retry-After so the client's SDK backs off as the provider asked
    super(status, message, { ...opts, headers: opts.retryAfterMs !== undefined ? { 'retry-after': String(Math.ceil(opts.retryAfterMs / 1000)) } : undefined })
    this.kind = opts.kind ?? 'http'
    this.retryable = opts.retryable ?? (status === 429 || status >= 500)
    this.retryAfterMs = opts.retryAfterMs
  }
}

export function errorTypeFor(status: number): string {
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 404) return 'not_found_error'
  if (status === 429) return 'rate_limit_error'
  if (status >= 500) return 'api_error'
  return 'invalid_request_error'
}

/** Turn anything thrown into a GatewayError without leaking stack traces or internals. */
export function toGatewayError(err: unknown): GatewayError {
  if (err instanceof GatewayError) return err
  return new GatewayError(500, 'Internal gateway error', { type: 'api_error', code: 'internal_error' })
}
