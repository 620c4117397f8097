import type { PipelineResult, RequestContext } from '../context.js'
import { GatewayError, UpstreamError } from '../errors.js'
import type { CallOverrides, TargetCaller } from '../providers/call.js'
import { backoffDelay, isRetryable, retryAfterOf, sleepUnlessAborted } from '../providers/retry.js'
import { observeStream } from '../stream.js'
import type { ChatCompletion, ChatRequest } from '../types.js'
import { checkAnswer, judgeMessages, parseJudgeScore, type CheckResult } from './checks.js'
import { matches, promptTokens } from './conditions.js'
import { completionToChunks, fromArray, peekStream } from './replay.js'
import { failureKinds, type CascadeTier, type Checks, type FailureKind, type RouteNode, type RoutingPolicy } from './schema.js'
import { scorerNamed, startTier } from './scorer.js'
import type { RoutingState } from './state.js'
import type { Target } from './types.js'

/** What a strategy ends with: the result and the target that produced it. */
export interface Answer {
  result: PipelineResult
  target: string
}

/** Why a target was tried; the `reason` label of the routing metric. */
type Why = 'single' | 'fallback' | 'loadbalance' | 'conditional' | 'cascade' | 'router'

interface RunOptions {
  why: Why
  /** Ledger reason text ("fallback 2 after timeout", "cascade tier 0"). */
  reason: string
  forceNonStream?: boolean
  request?: Partial<ChatRequest>
  review?: CallOverrides['review']
  /**
   * `performance.now()` by which this branch must be done: a cascade tier's `timeout_ms` covers the tier as a
   * whole (its retries and fallbacks too), not each try.
   */
  deadline?: number
}

export interface ExecutorDeps {
  resolveTarget: (name: string) => Target | undefined
  callTarget: TargetCaller
  state: RoutingState
  policy: RoutingPolicy
}

const DEFAULT_CHECKS: Checks = { json: true, tool_args: true, refusal: true }

/**
 * Run a routing strategy for one request. Strategies nest; every provider call goes through `attempt`
 * (breaker, retries with backoff, per-target timeouts, peek of the first stream chunk) and `callTarget`
 * (one ledger entry per call).
 *
 * @example
 * const answer = await createExecutor(deps)(ctx, { fallback: ['gpt-4o', 'claude-sonnet'] })
 */
export function createExecutor(deps: ExecutorDeps) {
  const { state, policy } = deps
  const metrics = state.metrics

  async function run(ctx: RequestContext, node: RouteNode, opts: RunOptions): Promise<Answer> {
    if (typeof node === 'string') return attempt(ctx, node, opts)
    if ('single' in node) return attempt(ctx, node.single, opts)
    if ('fallback' in node) return chain(ctx, node.fallback, node.on ?? [...failureKinds], opts, 'fallback')
    if ('loadbalance' in node) return chain(ctx, order(ctx, node), [...failureKinds], opts, 'loadbalance')
    if ('conditional' in node) {
      for (const rule of node.conditional) if (matches(ctx, rule.when)) return run(ctx, rule.route, { ...opts, why: 'conditional' })
      if (node.default !== undefined) return run(ctx, node.default, opts)
      throw new GatewayError(400, `No routing rule of model "${ctx.alias}" matches this request, and the route has no default.`, { code: 'no_route', param: 'model' })
    }
    return cascade(ctx, node.cascade, node.router, opts)
  }

  /** Try members in order; move on when a member fails with one of `on`. */
  async function chain(ctx: RequestContext, members: RouteNode[], on: FailureKind[], opts: RunOptions, why: 'fallback' | 'loadbalance'): Promise<Answer> {
    let lastError: unknown
    const tokens = members.length > 1 ? promptTokens(ctx) : 0
    for (let i = 0; i < members.length; i++) {
      const member = members[i]!
      const isLast = i === members.length - 1
      // a target whose context window cannot hold the prompt is skipped without a call
      const window = targetOf(member) ? deps.resolveTarget(targetOf(member)!)?.model.context_window : undefined
      if (!isLast && window !== undefined && tokens > window) {
        metrics?.fallbacks.inc({ alias: ctx.alias, target: targetOf(member)!, kind: 'context_length' })
        continue
      }
      const hold = why === 'loadbalance' ? state.hold(memberKey(ctx, member, i)) : undefined
      const started = performance.now()
      try {
        const reason = i === 0 ? opts.reason : `${opts.reason}; ${why} ${i}${lastError ? ` after ${failureKind(lastError) ?? 'error'}` : ''}`
        const answer = await run(ctx, member, { ...opts, why: i === 0 && why === 'fallback' ? opts.why : why, reason })
        if (why === 'loadbalance') state.observeLatency(memberKey(ctx, member, i), performance.now() - started)
        if (hold) {
          // a client that leaves before pulling the stream never ends it: release with the request too
          ctx.onDone.push(() => hold())
          return { ...answer, result: releaseAtEnd(answer.result, hold) }
        }
        return answer
      } catch (err) {
        hold?.()
        lastError = err
        const kind = failureKind(err)
        if (isLast || !kind || !on.includes(kind) || ctx.abort.aborted) throw err
        metrics?.fallbacks.inc({ alias: ctx.alias, target: targetOf(member) ?? `#${i}`, kind })
      }
    }
    throw lastError ?? new GatewayError(400, `The prompt (${tokens} tokens) fits the context window of no target of model "${ctx.alias}".`, { code: 'context_length_exceeded', param: 'messages' })
  }

  /** The order a load balancer tries its members in: the chosen one first, the rest as fallbacks. */
  function order(ctx: RequestContext, node: Extract<RouteNode, { loadbalance: unknown }>): RouteNode[] {
    const members = node.loadbalance.map((m, i) => ({ route: m.route, weight: m.weight ?? 1, key: memberKey(ctx, m.route, i) }))
    const rest = weightedShuffle(members, state.random)
    if (node.by === 'least_outstanding') {
      rest.sort((a, b) => state.outstanding(a.key) / a.weight - state.outstanding(b.key) / b.weight)
    } else if (node.by === 'least_latency') {
      // members never measured go first so each gets measured; the rest by their moving average
      rest.sort((a, b) => (state.latency(a.key) ?? -1) - (state.latency(b.key) ?? -1))
    }
    return rest.map((m) => m.route)
  }

  /** Cascade: cheap tiers are generated whole and checked; the first accepted answer is the answer. */
  async function cascade(ctx: RequestContext, tiers: CascadeTier[], router: Extract<RouteNode, { cascade: unknown }>['router'], opts: RunOptions): Promise<Answer> {
    let start = 0
    if (router) {
      const scorer = scorerNamed(router.scorer)
      if (!scorer) throw new GatewayError(500, `Scorer "${router.scorer}" is not registered.`, { type: 'api_error', code: 'config_error' })
      const score = scorer(ctx.request)
      start = startTier(score, router.threshold, tiers.length)
      ctx.responseHeaders['x-sluice-difficulty'] = score.toFixed(3)
    }
    const escalations: string[] = []
    for (let t = start; t < tiers.length; t++) {
      const tier = tiers[t]!
      const why: Why = t === start && router ? 'router' : 'cascade'
      const reason = `${opts.reason === 'primary' ? '' : `${opts.reason}; `}cascade tier ${t}`
      const last = t === tiers.length - 1
      // a cheap tier is generated whole before the client sees anything: bounded even when the tier sets no bounds
      const cap = last ? tier.max_tokens : (tier.max_tokens ?? policy.cascade_defaults.max_tokens)
      const timeoutMs = last ? tier.timeout_ms : (tier.timeout_ms ?? policy.cascade_defaults.timeout_ms)
      const deadline = timeoutMs === undefined ? opts.deadline : Math.min(performance.now() + timeoutMs, opts.deadline ?? Infinity)
      const request = { ...opts.request, ...capTokens(ctx.request, cap) }
      if (last) {
        ctx.responseHeaders['x-sluice-cascade-tier'] = String(t)
        if (escalations.length) ctx.responseHeaders['x-sluice-escalations'] = escalations.join(',')
        // the last tier's answer is taken as it is, streamed live when the client streams
        return run(ctx, tier.route, { ...opts, why, reason, request, deadline })
      }
      const checks = tier.checks ?? DEFAULT_CHECKS
      const wantsLogprobs = checks.min_mean_logprob !== undefined || checks.min_token_logprob !== undefined
      if (wantsLogprobs) request.logprobs = true
      let verdict: CheckResult = { ok: false, failed: 'empty' }
      const review = async (body: ChatCompletion): Promise<string | undefined> => {
        verdict = await judgeTier(ctx, body, checks, cap, t)
        return verdict.ok ? undefined : `${verdict.failed}: ${verdict.detail ?? ''}`
      }
      let answer: Answer
      try {
        answer = await run(ctx, tier.route, { ...opts, why, reason, request, review, forceNonStream: true, deadline })
      } catch (err) {
        if (ctx.abort.aborted) throw err
        // a cheap tier that fails (down, or unable to serve this request: images, n > 1) escalates
        escalations.push(`${t}:error`)
        metrics?.escalations.inc({ alias: ctx.alias, tier: String(t), check: 'error' })
        continue
      }
      if (!verdict.ok) {
        escalations.push(`${t}:${verdict.failed}`)
        metrics?.escalations.inc({ alias: ctx.alias, tier: String(t), check: verdict.failed ?? 'unknown' })
        continue
      }
      metrics?.accepted.inc({ alias: ctx.alias, tier: String(t) })
      ctx.responseHeaders['x-sluice-cascade-tier'] = String(t)
      if (escalations.length) ctx.responseHeaders['x-sluice-escalations'] = escalations.join(',')
      const body = (answer.result as { body: ChatCompletion }).body
      // logprobs were asked for the check, not by the client
      if (wantsLogprobs && !ctx.request.logprobs) for (const c of body.choices) c.logprobs = null
      if (ctx.stream && !opts.forceNonStream) {
        return { target: answer.target, result: { type: 'stream', stream: fromArray(completionToChunks(body, { includeLogprobs: Boolean(ctx.request.logprobs) })) } }
      }
      return answer
    }
    throw new GatewayError(500, 'cascade ended without a tier', { type: 'api_error' })
  }

  /** A tier's checks, then (when configured and the checks passed) the judge model. */
  async function judgeTier(ctx: RequestContext, body: ChatCompletion, checks: Checks, cap: number | undefined, t: number): Promise<CheckResult> {
    const capped = cap !== undefined && (ctx.request.max_completion_tokens ?? ctx.request.max_tokens ?? Infinity) > cap
    if (capped && body.choices[0]?.finish_reason === 'length') return { ok: false, failed: 'truncated', detail: `the answer hit the tier's max_tokens (${cap})` }
    const r = checkAnswer(ctx.request, body, checks)
    if (!r.ok || !checks.judge) return r
    const judge = deps.resolveTarget(checks.judge.target)
    if (!judge) return { ok: false, failed: 'judge', detail: `judge model "${checks.judge.target}" is not configured` }
    try {
      const res = await deps.callTarget(ctx, judge, {
        forceNonStream: true,
        reason: `cascade tier ${t} judge`,
        request: {
          messages: judgeMessages(ctx.request, body),
          tools: undefined, tool_choice: undefined, parallel_tool_calls: undefined, response_format: undefined,
          logprobs: undefined, top_logprobs: undefined, n: undefined, stop: undefined, max_completion_tokens: undefined,
          max_tokens: 8, temperature: 0
        }
      })
      const score = res.type === 'json' ? parseJudgeScore(res.body) : undefined
      if (score === undefined) return { ok: false, failed: 'judge', detail: 'the judge gave no score' }
      return score >= checks.judge.min_score ? { ok: true } : { ok: false, failed: 'judge', detail: `judge score ${score} < ${checks.judge.min_score}` }
    } catch (err) {
      return { ok: false, failed: 'judge', detail: `the judge failed: ${(err as Error).message}` }
    }
  }

  /**
   * One target: circuit breaker, then the call with retries (jittered exponential backoff, Retry-After
   * within a bound). A stream is committed to only after its first chunk arrived.
   */
  async function attempt(ctx: RequestContext, name: string, opts: RunOptions): Promise<Answer> {
    const target = deps.resolveTarget(name)
    if (!target) throw new GatewayError(500, `Routing of "${ctx.alias}" names model "${name}", which is not configured.`, { type: 'api_error', code: 'config_error' })
    const settings = policy.targets[name]
    const retry = { ...policy.retry, ...settings?.retry }
    for (let i = 0; ; i++) {
      // what is left of a tier's time bound and the target's own total timeout both hold: the shorter wins
      const left = opts.deadline === undefined ? undefined : Math.ceil(opts.deadline - performance.now())
      if (left !== undefined && left <= 0) throw new UpstreamError(504, `The cascade tier's timeout_ms ran out before "${name}" could be called.`, { kind: 'timeout', code: 'upstream_timeout', retryable: false })
      const totalTimeoutMs = left !== undefined && settings?.timeouts?.total_ms !== undefined ? Math.min(left, settings.timeouts.total_ms) : (left ?? settings?.timeouts?.total_ms)
      const timeouts = dropUndefined({ firstByteTimeoutMs: settings?.timeouts?.first_byte_ms, totalTimeoutMs })
      const permit = policy.breaker ? state.breakers.acquire(name, policy.breaker) : undefined
      metrics?.decisions.inc({ alias: ctx.alias, target: name, reason: i === 0 ? opts.why : 'retry' })
      try {
        let result = await deps.callTarget(ctx, target, {
          forceNonStream: opts.forceNonStream,
          request: opts.request,
          reason: i === 0 ? opts.reason : `${opts.reason}; retry ${i}`,
          timeouts,
          review: opts.review
        })
        if (result.type === 'stream') {
          const peeked = await peekStream(result.stream)
          // a client that leaves before pulling must still end the upstream call and settle it
          ctx.onDone.push(() => peeked.close())
          result = { type: 'stream', stream: peeked.stream }
        }
        permit?.success()
        return { result, target: name }
      } catch (err) {
        if (isHealthFailure(err)) permit?.failure()
        else permit?.release()
        if (!isRetryable(err) || i >= retry.retries || ctx.abort.aborted) throw err
        const delay = backoffDelay(i, retry, retryAfterOf(err), state.random)
        // no retry that could not start before the tier's time is up
        if (delay === undefined || (opts.deadline !== undefined && performance.now() + delay >= opts.deadline)) throw err
        metrics?.retries.inc({ target: name, kind: failureKind(err) ?? 'error' })
        await sleepUnlessAborted(delay, ctx.signal)
      }
    }
  }

  return (ctx: RequestContext, node: RouteNode) => run(ctx, node, { why: 'single', reason: 'primary' })
}

/**
 * What kind of failure an error is, for fallback rules; undefined when moving on would not help
 * (a bad request, a client that left).
 */
export function failureKind(err: unknown): FailureKind | undefined {
  if (err instanceof UpstreamError) {
    if (err.kind === 'aborted') return undefined
    if (err.kind === 'context_length') return 'context_length'
    if (err.kind === 'rate_limit' || err.status === 429) return 'rate_limit'
    if (err.kind === 'timeout') return 'timeout'
    if (err.kind === 'connect' || err.kind === 'protocol' || err.status >= 500) return 'error'
    // the target's own credentials or model name are wrong: another target may work
    if (err.status === 401 || err.status === 403 || err.status === 404) return 'error'
    return undefined
  }
  if (err instanceof GatewayError) return err.status >= 500 ? 'error' : undefined
  // anything else thrown by a provider (e.g. a local model failing) is the target's failure
  return 'error'
}

/** Failures that say something about the target's health (and count towards its circuit breaker). */
function isHealthFailure(err: unknown): boolean {
  if (err instanceof UpstreamError) return err.kind !== 'aborted' && (err.retryable || err.kind === 'timeout' || err.kind === 'connect')
  return !(err instanceof GatewayError)
}

function targetOf(node: RouteNode): string | undefined {
  return typeof node === 'string' ? node : 'single' in node ? node.single : undefined
}

function memberKey(ctx: RequestContext, node: RouteNode, i: number): string {
  return targetOf(node) ?? `${ctx.principal.team}/${ctx.alias}#${i}`
}

/** Weighted random order without replacement (Efraimidis–Spirakis keys). */
function weightedShuffle<T extends { weight: number }>(items: T[], random: () => number): T[] {
  return items
    .map((item) => ({ item, key: Math.pow(random(), 1 / item.weight) }))
    .sort((a, b) => b.key - a.key)
    .map((x) => x.item)
}

/** The tier's output cap, never above what the client asked for. */
function capTokens(req: ChatRequest, cap: number | undefined): Partial<ChatRequest> {
  if (cap === undefined) return {}
  const client = req.max_completion_tokens ?? req.max_tokens
  const value = client != null ? Math.min(client, cap) : cap
  return req.max_completion_tokens != null ? { max_completion_tokens: value } : { max_tokens: value }
}

/** Release a load-balancer slot when the answer has been delivered (streams: when the stream ends). */
function releaseAtEnd(result: PipelineResult, release: () => void): PipelineResult {
  if (result.type === 'json') {
    release()
    return result
  }
  return { type: 'stream', stream: observeStream(result.stream, { onEnd: () => release() }) }
}

function dropUndefined<T extends Record<string, unknown>>(o: T): Partial<T> | undefined {
  const out: Partial<T> = {}
  let any = false
  for (const [k, v] of Object.entries(o)) if (v !== undefined) {
    ;(out as Record<string, unknown>)[k] = v
    any = true
  }
  return any ? out : undefined
}
