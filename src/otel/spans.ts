import type { Attempt, RequestContext } from '../context.js'
import type { ProviderConfig } from '../config/schema.js'
import { GatewayError } from '../errors.js'
import type { AttributeValue, SpanData } from './encode.js'
import { newSpanId, type TraceContext } from './trace-context.js'

/** What the tracing step saw of the answer the client got (never its text). */
export interface AnswerSeen {
  /** The pipeline returned a result (for streams: the 200 and headers went out). */
  answered: boolean
  responseModel?: string
  responseId?: string
  finishReasons: string[]
}

const ROUTES: Record<RequestContext['surface'], string> = {
  chat: '/v1/chat/completions',
  messages: '/v1/messages',
  responses: '/v1/responses',
  embeddings: '/v1/embeddings'
}

// gen_ai.provider.name well-known values; llama.cpp runs in-process and has none
const PROVIDER_NAMES: Record<ProviderConfig['kind'], string> = { openai: 'openai', anthropic: 'anthropic', llama: 'llama.cpp' }

/**
 * The spans of one finished request: a SERVER span for the gateway's work (parent: the caller's span from
 * `traceparent`, if any) and a CLIENT span per provider attempt, with the OpenTelemetry GenAI
 * semantic-convention attributes. Only counts, names, ids and settings: no prompt or completion text, no
 * error message (upstreams may echo input), no key.
 *
 * @example
 * exporter.enqueue(requestSpans(ctx, error, trace, seen, (name) => config.providers[name], performance.now()))
 */
export function requestSpans(
  ctx: RequestContext,
  error: unknown,
  trace: TraceContext,
  seen: AnswerSeen,
  providerConfig: (name: string) => ProviderConfig | undefined,
  endMs: number
): SpanData[] {
  const serverSpanId = newSpanId()
  // a stream that ends with a non-upstream error after its 200 went out was closed by the client
  const aborted = ctx.abort.aborted || (seen.answered && Boolean(error) && !(error instanceof GatewayError))
  // once a stream's 200 went out, a later failure does not change the HTTP status
  const httpStatus = seen.answered ? 200 : error instanceof GatewayError ? error.status : error ? (aborted ? 499 : 500) : 200
  // choices are noted by index; a stream may end without some of them
  const finishReasons = seen.finishReasons.filter((r) => typeof r === 'string')
  const tokens = { input: 0, output: 0 }
  for (const a of ctx.attempts) {
    tokens.input += a.usage?.prompt_tokens ?? 0
    tokens.output += a.usage?.completion_tokens ?? 0
  }

  const server: SpanData = {
    traceId: trace.traceId,
    spanId: serverSpanId,
    parentSpanId: trace.parentSpanId,
    traceState: trace.traceState,
    name: `POST ${ROUTES[ctx.surface]}`,
    kind: 'server',
    startMs: ctx.startedAt,
    endMs,
    attributes: {
      'http.request.method': 'POST',
      'http.route': ROUTES[ctx.surface],
      'http.response.status_code': httpStatus,
      'error.type': errorType(error, aborted),
      'session.id': ctx.session,
      'sluice.request_id': ctx.id,
      'sluice.surface': ctx.surface,
      'sluice.team': ctx.principal.team,
      'sluice.agent': ctx.agent,
      'sluice.tags': ctx.tags.length ? ctx.tags : undefined,
      'sluice.model': ctx.alias,
      'sluice.stream': ctx.stream,
      'sluice.cache': ctx.cache,
      'sluice.cost_usd': { double: ctx.costUsd },
      'sluice.saved_usd': ctx.savedUsd !== undefined ? { double: ctx.savedUsd } : undefined,
      'sluice.attempts': ctx.attempts.length,
      'sluice.usage.input_tokens': tokens.input,
      'sluice.usage.output_tokens': tokens.output,
      'sluice.guardrails': ctx.guardrails.length ? ctx.guardrails : undefined,
      'gen_ai.response.finish_reasons': finishReasons.length ? finishReasons : undefined
    },
    status: error ? { code: 'error', message: errorType(error, aborted) } : { code: 'unset' }
  }

  // the answer the client got came from the last successful attempt
  const answering = error ? -1 : lastIndexOf(ctx.attempts, (a) => a.status === 'ok')
  const answer = { ...seen, finishReasons }
  const clients = ctx.attempts.map((a, i) => attemptSpan(ctx, a, trace.traceId, serverSpanId, providerConfig(a.provider), i === answering ? answer : undefined, endMs))
  return [server, ...clients]
}

function attemptSpan(ctx: RequestContext, a: Attempt, traceId: string, parentSpanId: string, provider: ProviderConfig | undefined, seen: AnswerSeen | undefined, endMs: number): SpanData {
  const req = ctx.request
  const usage = a.usage
  // attempts record when they started; an attempt without it is placed to end with the request
  const startMs = a.startedAt ?? Math.max(ctx.startedAt, endMs - a.latencyMs)
  const server = provider && provider.kind !== 'llama' ? serverOf(provider.base_url) : undefined
  const system = provider ? PROVIDER_NAMES[provider.kind] : a.provider
  const attributes: Record<string, AttributeValue> = {
    'gen_ai.operation.name': 'chat',
    'gen_ai.provider.name': system,
    // the name before semantic conventions 1.37, still what many backends read
    'gen_ai.system': system,
    'gen_ai.request.model': a.model,
    'gen_ai.request.max_tokens': num(req.max_completion_tokens ?? req.max_tokens),
    'gen_ai.request.temperature': dbl(req.temperature),
    'gen_ai.request.top_p': dbl(req.top_p),
    'gen_ai.request.frequency_penalty': dbl(req.frequency_penalty),
    'gen_ai.request.presence_penalty': dbl(req.presence_penalty),
    'gen_ai.request.seed': num(req.seed),
    'gen_ai.request.choice.count': typeof req.n === 'number' && req.n !== 1 ? req.n : undefined,
    'gen_ai.response.model': seen?.responseModel,
    'gen_ai.response.id': seen?.responseId,
    'gen_ai.response.finish_reasons': seen?.finishReasons.length ? seen.finishReasons : undefined,
    'gen_ai.usage.input_tokens': usage?.prompt_tokens,
    'gen_ai.usage.output_tokens': usage?.completion_tokens,
    'gen_ai.usage.cache_read.input_tokens': usage?.prompt_tokens_details?.cached_tokens || undefined,
    'gen_ai.usage.cache_creation.input_tokens': usage?.cache_creation_input_tokens || undefined,
    'server.address': server?.address,
    'server.port': server?.port,
    'error.type': a.status === 'ok' ? undefined : a.status,
    'sluice.target': a.target,
    'sluice.provider': a.provider,
    'sluice.attempt.status': a.status,
    'sluice.attempt.reason': a.reason,
    'sluice.cost_usd': { double: a.costUsd },
    'sluice.usage.estimated': a.estimated || undefined,
    'sluice.ttft_ms': a.ttftMs !== undefined ? { double: round3(a.ttftMs) } : undefined
  }
  return {
    traceId,
    spanId: newSpanId(),
    parentSpanId,
    name: `chat ${a.model}`,
    kind: 'client',
    startMs,
    endMs: startMs + a.latencyMs,
    attributes,
    status: a.status === 'ok' ? { code: 'unset' } : { code: 'error', message: a.status }
  }
}

/** A low-cardinality error class: the OpenAI-style code, else the error type; never the message. */
function errorType(error: unknown, aborted: boolean): string | undefined {
  if (!error) return undefined
  if (error instanceof GatewayError) return error.code ?? error.type
  return aborted ? 'client_closed' : 'internal_error'
}

function serverOf(baseUrl: string): { address: string; port: number } | undefined {
  try {
    const u = new URL(baseUrl)
    return { address: u.hostname, port: u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : 80 }
  } catch {
    return undefined
  }
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : undefined)
const dbl = (v: unknown): { double: number } | undefined => (typeof v === 'number' && Number.isFinite(v) ? { double: v } : undefined)
const round3 = (ms: number) => Math.round(ms * 1000) / 1000

function lastIndexOf<T>(items: T[], test: (item: T) => boolean): number {
  for (let i = items.length - 1; i >= 0; i--) if (test(items[i]!)) return i
  return -1
}
