import { providerCacheSavings } from '../cache/prompt-caching.js'
import { resolveCachePolicy } from '../cache/schema.js'
import type { Attempt, PipelineResult, RequestContext } from '../context.js'
import type { RequestAbort } from '../abort.js'
import { GatewayError, UpstreamError } from '../errors.js'
import { costOf, tokenCounts } from '../ledger/cost.js'
import { ledgerAtEnd } from '../ledger/at-end.js'
import { ledgerEntryFor, ledgerModel } from '../ledger/entry.js'
import type { Ledger } from '../ledger/index.js'
import type { Metrics } from '../metrics/index.js'
import type { Target } from '../routing/types.js'
import { observeStream } from '../stream.js'
import { NATIVE_REQUEST_KEY, type NativeRequest } from './native.js'
import type { CallOptions } from './types.js'
import { countPromptTokens, countTextTokens, encodingFor } from '../tokens.js'
import type { ChatChunk, ChatCompletion, ChatRequest, Usage } from '../types.js'

export interface CallDeps {
  ledger: Ledger
  metrics: Metrics
}

export interface CallOverrides {
  /** Generate a stream request to completion instead (cascade tiers are judged before anything is sent). */
  forceNonStream?: boolean
  /** Request changes for this target only (e.g. a downgrade's own max_tokens). */
  request?: Partial<ChatRequest>
  /** Why this target was chosen, recorded in the ledger (fallback, cascade tier, downgrade). */
  reason?: string
  /** Per-target timeouts that replace the provider's (routing `targets:` settings, cascade tier bounds). */
  timeouts?: { firstByteTimeoutMs?: number; totalTimeoutMs?: number }
  /** Judge a complete answer before it is settled: a returned reason settles it as `rejected` (cascade tiers). */
  review?: (body: ChatCompletion) => Promise<string | undefined>
}

/** `ctx.state` key of a function giving each call the output cap its budget reservation assumed. */
export const OUTPUT_CAP_STATE = 'budget.outputCap'

/**
 * Call one target and settle the attempt: every call that reaches a provider gets exactly one ledger entry,
 * with the provider's usage or, where it gave none (client gone mid-stream, a provider without usage),
 * a tiktoken estimate marked `estimated`.
 *
 * @example
 * const call = createTargetCaller({ ledger, metrics })
 * const result = await call(ctx, target)
 */
export function createTargetCaller(deps: CallDeps) {
  const { ledger, metrics } = deps

  return async function callTarget(ctx: RequestContext, target: Target, over: CallOverrides = {}): Promise<PipelineResult> {
    const unavailable = target.provider.unavailableReason?.()
    if (unavailable) {
      throw new GatewayError(503, `Model "${ctx.alias}" is unavailable: ${unavailable}.`, { type: 'api_error', code: 'model_unavailable' })
    }
    const merged: ChatRequest = { ...ctx.request, ...over.request, model: target.model.model }
    // budgets reserved each model's own output cap for a request that set none (src/budget/admit.ts)
    const capOutput = ctx.state[OUTPUT_CAP_STATE] as ((request: ChatRequest, target: Target) => ChatRequest) | undefined
    const req = capOutput ? capOutput(merged, target) : merged
    const stream = ctx.stream && !over.forceNonStream
    const started = performance.now()
    const attempt: Attempt = { target: target.name, provider: target.provider.name, model: target.model.model, status: 'ok', costUsd: 0, startedAt: started, latencyMs: 0, reason: over.reason }
    ctx.attempts.push(attempt)
    const attemptNo = ctx.attempts.length
    const abort = ctx.abort
    const native = ctx.state[NATIVE_REQUEST_KEY] as NativeRequest | undefined
    // the team's provider prompt-caching settings (Anthropic breakpoints; on by default without a cache: section)
    const promptCache = resolveCachePolicy(ctx.policy.cache).provider
    // the entry is written when the request ends, with the guardrail actions taken on the answer too
    const record = ledgerAtEnd(ctx, ledger)

    const settle = (status: Attempt['status'], usage: Usage | undefined, estimate: () => Usage, err?: unknown) => {
      const estimated = !usage
      const u = usage ?? estimate()
      const tokens = tokenCounts(u)
      const cost = costOf(tokens, target.model.price)
      // what the provider's prompt cache saved (net of write premiums), only from usage the provider reported
      const promptSaving = estimated ? undefined : providerCacheSavings(u, target.model.price)
      attempt.status = status
      attempt.usage = u
      attempt.estimated = estimated
      attempt.costUsd = cost
      attempt.latencyMs = performance.now() - started
      if (err) attempt.error = err instanceof Error ? err.message : String(err)
      ctx.costUsd += cost
      record(ledgerEntryFor(ctx, {
        model: ledgerModel(target),
        provider: target.provider.name,
        stream,
        status,
        http_status: err instanceof GatewayError ? err.status : status === 'ok' ? 200 : undefined,
        tokens,
        estimated,
        cost_usd: cost,
        saved_usd: promptSaving && (promptSaving.cachedTokens || promptSaving.writeTokens) ? round(promptSaving.netSavedUsd) : undefined,
        latency_ms: Math.round(attempt.latencyMs),
        ttft_ms: attempt.ttftMs !== undefined ? Math.round(attempt.ttftMs) : undefined,
        attempt: attemptNo,
        reason: over.reason,
        error: attempt.error
      }))
      const labels = { team: ctx.principal.team, model: ctx.alias }
      metrics.cost.inc(labels, cost)
      if (tokens.input) metrics.tokens.inc({ ...labels, kind: 'input' }, tokens.input)
      if (tokens.output) metrics.tokens.inc({ ...labels, kind: 'output' }, tokens.output)
      if (tokens.cached_input) metrics.tokens.inc({ ...labels, kind: 'cached_input' }, tokens.cached_input)
      if (tokens.cache_write) metrics.tokens.inc({ ...labels, kind: 'cache_write' }, tokens.cache_write)
      metrics.upstreamLatency.observe({ provider: target.provider.name }, attempt.latencyMs / 1000)
      return cost
    }

    const encoding = encodingFor(target.model.model, target.model.encoding)
    const promptOnly = (): Usage => {
      const p = countPromptTokens(req, encoding)
      return { prompt_tokens: p, completion_tokens: 0, total_tokens: p }
    }

    if (!stream) {
      let body: ChatCompletion
      try {
        body = await target.provider.chat(stream === ctx.stream ? req : { ...req, stream: false }, callOptions(abort, native, promptCache, over.timeouts))
      } catch (err) {
        // an abort after the prompt was sent may still be billed by the provider: charge the prompt
        const aborted = err instanceof UpstreamError && err.kind === 'aborted'
        settle(aborted ? 'aborted' : 'error', aborted ? undefined : zeroUsage, promptOnly, err)
        throw err
      }
      const rejection = over.review ? await over.review(body) : undefined
      settle(rejection ? 'rejected' : 'ok', body.usage, () => estimateFrom(promptOnly(), completionText(body), encoding), rejection)
      return { type: 'json', body }
    }

    let source: AsyncIterable<ChatChunk>
    try {
      source = await target.provider.chatStream(req, callOptions(abort, native, promptCache, over.timeouts))
    } catch (err) {
      const aborted = err instanceof UpstreamError && err.kind === 'aborted'
      settle(aborted ? 'aborted' : 'error', aborted ? undefined : zeroUsage, promptOnly, err)
      throw err
    }
    let usage: Usage | undefined
    const parts: string[] = []
    return {
      type: 'stream',
      stream: observeStream(source, {
        map: (chunk) => {
          if (attempt.ttftMs === undefined) {
            attempt.ttftMs = performance.now() - started
            metrics.ttft.observe({ provider: target.provider.name }, (performance.now() - ctx.startedAt) / 1000)
          }
          if (chunk.usage) {
            usage = chunk.usage
            // the cost is known before the stream ends: carry it in the usage chunk for clients that asked
            const cost = costOf(tokenCounts(usage), target.model.price)
            chunk.usage = { ...usage, sluice_cost_usd: round(ctx.costUsd + cost) }
          }
          for (const choice of chunk.choices) {
            if (typeof choice.delta?.content === 'string') parts.push(choice.delta.content)
            for (const tc of choice.delta?.tool_calls ?? []) if (tc.function?.arguments) parts.push(tc.function.arguments)
          }
          return chunk
        },
        onEnd: ({ error, closedEarly }) => {
          const status = closedEarly || (error && abort.aborted) ? 'aborted' : error ? 'error' : 'ok'
          settle(status, usage, () => estimateFrom(promptOnly(), parts.join(''), encoding), error)
        }
      })
    }
  }
}

export type TargetCaller = ReturnType<typeof createTargetCaller>

/**
 * A provider call's options. `signal` is a getter, not a value: the HTTP providers listen through `abort` and never
 * read it, so no AbortSignal is made for them. A class, not an object literal with a getter, which V8 builds
 * through its slow runtime path (~5 µs per call on a cold CPU, profiled). Its getter is on the prototype: a
 * spread copy (`{ ...opts }`) leaves `signal` out and must set it itself.
 */
class ProviderCallOptions implements CallOptions {
  firstByteTimeoutMs?: number
  totalTimeoutMs?: number
  constructor(
    readonly abort: RequestAbort,
    readonly native: NativeRequest | undefined,
    readonly promptCache: CallOptions['promptCache'],
    timeouts: { firstByteTimeoutMs?: number; totalTimeoutMs?: number } | undefined
  ) {
    this.firstByteTimeoutMs = timeouts?.firstByteTimeoutMs
    this.totalTimeoutMs = timeouts?.totalTimeoutMs
  }

  get signal(): AbortSignal {
    return this.abort.signal
  }
}

function callOptions(abort: RequestAbort, native: NativeRequest | undefined, promptCache: CallOptions['promptCache'], timeouts: { firstByteTimeoutMs?: number; totalTimeoutMs?: number } | undefined): CallOptions {
  return new ProviderCallOptions(abort, native, promptCache, timeouts)
}

const zeroUsage: Usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }

function estimateFrom(prompt: Usage, completion: string, encoding: ReturnType<typeof encodingFor>): Usage {
  const c = countTextTokens(completion, encoding)
  return { prompt_tokens: prompt.prompt_tokens, completion_tokens: c, total_tokens: prompt.prompt_tokens + c }
}

function completionText(body: ChatCompletion): string {
  let s = ''
  for (const ch of body.choices) {
    const c = ch.message?.content
    if (typeof c === 'string') s += c
    for (const tc of ch.message?.tool_calls ?? []) s += tc.function.arguments
  }
  return s
}

/** USD rounded to 1e-9 so sums print cleanly. */
export function round(usd: number): number {
  return Math.round(usd * 1e9) / 1e9
}
