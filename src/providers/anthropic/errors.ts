import { GatewayError, UpstreamError } from '../../errors.js'
import { ANTHROPIC_ERROR_STATUS, ANTHROPIC_ERROR_TYPES, type AnthropicErrorBody } from './wire.js'

type ParsedError = { message: string; type?: string; code?: string | null; kind?: UpstreamError['kind'] }

/**
 * Anthropic's `{"type":"error","error":{"type","message"}}` → the fields createUpstream needs.
 * "prompt is too long" is a context-length failure, which routing may answer with a bigger model.
 *
 * @example
 * parseAnthropicError(529, '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')
 * // → { message: 'Overloaded', type: 'overloaded_error', code: 'overloaded_error', kind: 'http' }
 */
export function parseAnthropicError(status: number, text: string): ParsedError {
  let message = text.slice(0, 500) || `HTTP ${status}`
  let type: string | undefined
  try {
    const body = JSON.parse(text) as Partial<AnthropicErrorBody> & { message?: string }
    const err = body?.error
    if (err && typeof err.message === 'string') {
      message = err.message
      type = typeof err.type === 'string' ? err.type : undefined
    } else if (typeof body?.message === 'string') {
      message = body.message
    }
  } catch {
    // not JSON (a proxy's HTML page): keep the text
  }
  return { message, type, code: type ?? null, kind: errorKind(status, type, message) }
}

/**
 * An `error` event inside a stream → UpstreamError with the status Anthropic uses for that type
 * (overloaded_error → 529, retryable).
 *
 * @example
 * throw anthropicStreamError({ type: 'overloaded_error', message: 'Overloaded' })
 */
export function anthropicStreamError(err: { type?: string; message?: string } | undefined): UpstreamError {
  const type = err?.type ?? 'api_error'
  const status = ANTHROPIC_ERROR_STATUS[type] ?? 500
  const message = err?.message ?? 'Anthropic stream failed'
  return new UpstreamError(status, message, { type, code: type, kind: errorKind(status, type, message) })
}

/**
 * Any gateway error → Anthropic's error status and body, for the inbound /v1/messages surface.
 *
 * @example
 * const { status, body } = toAnthropicError(new GatewayError(404, 'Model "x" does not exist'))
 * // body → { type: 'error', error: { type: 'not_found_error', message: 'Model "x" does not exist' } }
 */
export function toAnthropicError(err: GatewayError): { status: number; body: AnthropicErrorBody } {
  // Upstream Anthropic types (overloaded_error) survive; otherwise derive the type from the status.
  const known = Object.values(ANTHROPIC_ERROR_TYPES).includes(err.type) ? err.type : undefined
  const type = known ?? ANTHROPIC_ERROR_TYPES[err.status] ?? (err.status >= 500 ? 'api_error' : 'invalid_request_error')
  return { status: err.status, body: { type: 'error', error: { type, message: err.message } } }
}

function errorKind(status: number, type: string | undefined, message: string): UpstreamError['kind'] {
  if (/prompt is too long|exceed context limit|context window/i.test(message)) return 'context_length'
  if (status === 429 || type === 'rate_limit_error') return 'rate_limit'
  return 'http'
}
