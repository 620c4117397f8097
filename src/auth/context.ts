import { newId } from '../ids.js'
import { abortFromSignal, type RequestAbort } from '../abort.js'
import type { RequestContext } from '../context.js'
import type { TeamPolicy } from '../config/schema.js'
import { GatewayError } from '../errors.js'
import type { ChatRequest, Principal } from '../types.js'

export type Headers = Record<string, string | undefined>

const SESSION_ID = /^[\w.:@/+=-]{1,200}$/

/**
 * Build the request context from the caller's principal and attribution headers:
 * `x-sluice-session` (or `x-session-id`), `x-sluice-agent`, `x-sluice-tags` (comma-separated) and the body's `user`.
 *
 * @example
 * const ctx = createContext({ principal, policy, headers, request, surface: 'chat', signal })
 *
 * `abort` instead of `signal`: the request's own abort (src/abort.ts), which makes an AbortSignal only when
 * `ctx.signal` is read: an exact-cache hit never reads it, and the upstream call subscribes through `ctx.abort`.
 */
export function createContext(input: {
  principal: Principal
  policy: TeamPolicy
  headers: Headers
  request: ChatRequest
  surface: RequestContext['surface']
  signal?: AbortSignal
  abort?: RequestAbort
  id?: string
}): RequestContext {
  const abort = input.abort ?? abortFromSignal(input.signal!)
  const { headers, request } = input
  const session = attribution(headers['x-sluice-session'] ?? headers['x-session-id'], 'x-sluice-session')
  const agent = attribution(headers['x-sluice-agent'], 'x-sluice-agent')
  const tagHeader = headers['x-sluice-tags']
  const tags = tagHeader ? tagHeader.split(',').map((t) => t.trim()).filter(Boolean).slice(0, 20) : []
  for (const t of tags) attribution(t, 'x-sluice-tags')
  const principal = typeof request.user === 'string' && request.user && !input.principal.user ? { ...input.principal, user: request.user.slice(0, 200) } : input.principal
  return new Context(input.id ?? newId(), input.surface, principal, session, agent, tags, input.policy, request, headers, abort)
}

/**
 * A request's context. A class rather than an object literal for one reason: `signal` must be a getter (the
 * request's AbortSignal is made on first read, about 5 µs, and most requests never need one), and V8 keeps any
 * object literal with a getter in dictionary mode, where each of the ~115 reads a miss makes of its context is a
 * hash lookup; a class's instances keep fast properties (in a loop of creating a context and reading it 200
 * times: 0.74 instead of 2.3 µs).
 */
class Context implements RequestContext {
  startedAt = performance.now()
  alias: string
  stream: boolean
  wantsUsage: boolean
  responseHeaders: Record<string, string> = {}
  attempts: RequestContext['attempts'] = []
  costUsd = 0
  guardrails: string[] = []
  onDone: RequestContext['onDone'] = []
  state: Record<string, unknown> = {}
  declare savedUsd?: number
  declare cache?: RequestContext['cache']
  declare guardrailActions?: string[]
  readonly abort: RequestAbort

  constructor(
    public id: string,
    public surface: RequestContext['surface'],
    public principal: Principal,
    public session: string | undefined,
    public agent: string | undefined,
    public tags: string[],
    public policy: TeamPolicy,
    public request: ChatRequest,
    public headers: Headers,
    abort: RequestAbort
  ) {
    this.abort = abort
    this.alias = request.model
    this.stream = request.stream === true
    this.wantsUsage = request.stream_options?.include_usage === true
  }

  get signal(): AbortSignal {
    return this.abort.signal
  }
}

function attribution(value: string | undefined, header: string): string | undefined {
  if (value === undefined || value === '') return undefined
  if (!SESSION_ID.test(value)) {
    throw new GatewayError(400, `Header ${header} must be 1-200 characters of letters, digits and . _ : @ / + = -`, { code: 'invalid_header', param: header })
  }
  return value
}
