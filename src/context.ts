import type { ChatChunk, ChatCompletion, ChatRequest, Principal, Usage } from './types.js'
import type { RequestAbort } from './abort.js'
import type { TeamPolicy } from './config/schema.js'

/** One provider call made for a request (cascade tiers and fallbacks make several). */
export interface Attempt {
  target: string
  provider: string
  model: string
  status: 'ok' | 'error' | 'aborted' | 'rejected'
  usage?: Usage
  /** True when usage was counted with tiktoken because the provider gave none. */
  estimated?: boolean
  costUsd: number
  /** performance.now() when the call started (trace spans). */
  startedAt?: number
  latencyMs: number
  ttftMs?: number
  error?: string
  reason?: string
}

/** What a request has to go through the pipeline with. Built by the route, enriched by the steps. */
export interface RequestContext {
  id: string
  /** performance.now() at arrival. */
  startedAt: number
  surface: 'chat' | 'embeddings' | 'messages' | 'responses'
  principal: Principal
  session?: string
  agent?: string
  tags: string[]
  policy: TeamPolicy
  /** The public model name the client asked for. */
  alias: string
  request: ChatRequest
  stream: boolean
  /** The client asked for a usage chunk (stream_options.include_usage). */
  wantsUsage: boolean
  /** Request headers, lower-cased names. */
  headers: Record<string, string | undefined>
  /** Aborted when the client goes away or the gateway shuts down; hear of it with `abort.onAbort` (no AbortSignal made). */
  readonly abort: RequestAbort
  /** The same as a real AbortSignal, made on first read: for the callers that need one. */
  readonly signal: AbortSignal
  /** Headers to send with the response (non-streams, and streams before the first byte). */
  responseHeaders: Record<string, string>
  attempts: Attempt[]
  /** Cost of this request so far (sum of attempts); final once `done` has run. */
  costUsd: number
  /** Set by the cache step on hits: what the hit saved. */
  savedUsd?: number
  cache?: 'hit' | 'semantic-hit' | 'miss' | 'bypass'
  /** Guardrail rules that fired. */
  guardrails: string[]
  /** Guardrail actions taken, `rule:action` (e.g. `pii.email:redact`), for the ledger entries. */
  guardrailActions?: string[]
  /**
   * Callbacks run once when the request has fully ended (stream finished, aborted or failed), innermost step first.
   * Their async parts run alongside each other (one store write for the settlement and the session total); one
   * made with `afterOthers` starts only once those before it have settled.
   */
  onDone: EndCallback[]
  /**
   * Resolves once every `onDone` callback has run, for a JSON answer: the pipeline returns the answer as soon as
   * the callbacks have started, without waiting for their store round trips (budget settlement, the session's
   * running total). A surface that sends something those produce (`x-sluice-session-cost-usd`) awaits it.
   */
  ended?: Promise<void>
  /** Free-form per-step state, keyed by step name. */
  state: Record<string, unknown>
}

/** An `onDone` callback. */
export type EndCallback = ((ctx: RequestContext, error?: unknown) => void | Promise<void>) & { readonly [AFTER_OTHERS]?: true }

const AFTER_OTHERS: unique symbol = Symbol('sluice.afterOthers')

/**
 * Marks an end callback that must see the other callbacks' work done (the gateway's in-flight release: shutdown
 * drains on it): `finish` waits for the async parts of those started before it.
 *
 * @example
 * ctx.onDone.push(afterOthers(() => release()))
 */
export function afterOthers(fn: (ctx: RequestContext, error?: unknown) => void | Promise<void>): EndCallback {
  return Object.assign(fn, { [AFTER_OTHERS]: true as const })
}

/** Whether `finish` must wait for the callbacks started before this one. */
export function runsAfterOthers(fn: EndCallback): boolean {
  return fn[AFTER_OTHERS] === true
}

/** `ctx.state` key of the admission gate (`setAdmissionGate`). */
const ADMISSION_GATE = 'admission.gate'

/**
 * Makes `verdict` the request's admission gate: a check sent to the store ahead of the cache lookup and not read yet
 * (the early rate limit, `store.reserve_early`), so that it shares the lookup's round trip. Nothing may answer or go on
 * to a provider before it passes: the cache step reads it before it serves a hit or looks further, and the gate step
 * after the cache step before a miss goes on. A refusal rejects it (the 429); a pass resolves it.
 *
 * @example
 * setAdmissionGate(ctx, admission.admit(ctx, estimate, { only: 'rate' }))
 * await admissionGate(ctx) // throws the refusal
 */
export function setAdmissionGate(ctx: RequestContext, verdict: Promise<unknown>): void {
  // read by the gate, or never (an error before it): not an unhandled rejection
  verdict.catch(() => undefined)
  ctx.state[ADMISSION_GATE] = verdict
}

/** The request's admission gate, or undefined when no check is pending (see `setAdmissionGate`). */
export function admissionGate(ctx: RequestContext): Promise<unknown> | undefined {
  return ctx.state[ADMISSION_GATE] as Promise<unknown> | undefined
}

export type PipelineResult =
  | { type: 'json'; body: ChatCompletion }
  | { type: 'stream'; stream: AsyncIterable<ChatChunk> }

/** A step of the pipeline: Koa/Hono-style middleware over the canonical request. */
export type Step = (ctx: RequestContext, next: () => Promise<PipelineResult>) => Promise<PipelineResult>
