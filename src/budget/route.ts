import type { ResolvedModel } from '../config/load.js'
import { judgeMessages } from '../routing/checks.js'
import type { CascadeTier, RouteNode, RoutingPolicy } from '../routing/schema.js'
import { countPromptTokens, countTextTokens, encodingFor } from '../tokens.js'
import type { ChatCompletion, ChatRequest } from '../types.js'
import { promptPrice, requestedCap, worstCase } from './estimate.js'

/** What a request may cost through its whole route, and what the rate limiter counts for it. */
export interface RouteWorstCase {
  usd: number
  /** The largest prompt (tokens) any call of the route may send. */
  promptTokens: number
  /** The output cap the client asked for × n (0 when it set none). */
  outputTokens: number
  capFromRequest: boolean
  /** Provider calls the route may make at most (retries, fallbacks, tiers and judges). */
  calls: number
}

export interface RouteWorstCaseOptions {
  models: Record<string, ResolvedModel>
  /** The team's routing section (retries per target); none means no retries, as the router does. */
  routing?: RoutingPolicy
  /** The client streams: a streamed attempt that fails before its first chunk is charged its prompt. */
  stream: boolean
  /**
   * Count prompts with `promptTokenBound` (no tokenizer run for texts not counted before): a larger but
   * still safe reservation. `promptTokens` is then a bound too, so a rate limiter must not use it.
   */
  bound?: boolean
}

/** Characters of a tier's answer a judge is shown (`judgeMessages` in src/routing/checks.ts cuts there). */
export const JUDGE_ANSWER_CHARS = 8000
/** `max_tokens` of a judge call (src/routing/execute.ts). */
export const JUDGE_OUTPUT_TOKENS = 8

/**
 * The most a request can cost through a routing strategy, every provider call of the request together —
 * the amount a budget must reserve so that the settled cost (`ctx.costUsd`, all attempts) cannot exceed it.
 *
 * Each call is priced with its own model: prompt counted with that model's encoding, output cap = the
 * request's (or the cascade tier's) cap, else that model's `max_output_tokens`, else 4096. The strategy tree
 * combines them the way the router can spend:
 * - a call with `r` retries: a failed attempt is charged nothing (non-streamed) or its prompt (a streamed
 *   attempt that fails before its first chunk), so r × that + the last attempt's worst case;
 * - fallback: the worst member's case plus what every member before it may be charged for failing;
 *   loadbalance: the same over any order (members are tried in random order);
 * - conditional: the dearest branch;
 * - cascade: every tier may run (a rejected answer is billed), each earlier tier plus its judge call, then the
 *   last tier's worst case.
 *
 * @example
 * routeWorstCase(request, { cascade: [{ route: 'local' }, { route: { fallback: ['gpt-4o', 'claude'] } }] }, { models, stream: false }).usd
 */
export function routeWorstCase(request: ChatRequest, node: RouteNode, opts: RouteWorstCaseOptions): RouteWorstCase {
  let promptTokens = 0
  let calls = 0

  /** Cost bounds of a node: when it answers (`ok`) and when it throws (`fail`), and its calls at most. */
  interface Bound {
    ok: number
    fail: number
    calls: number
  }
  interface Mode {
    stream: boolean
    /** Request changes the router makes on the way (cascade tier caps). */
    override: Partial<ChatRequest>
  }

  const call = (name: string, mode: Mode): Bound => {
    const model = opts.models[name]
    // a target that is not configured is refused by the router without a call
    if (!model) return { ok: 0, fail: 0, calls: 0 }
    const worst = worstCase({ ...request, ...mode.override, model: model.model }, model, { bound: opts.bound })
    promptTokens = Math.max(promptTokens, worst.promptTokens)
    const failed = mode.stream ? (worst.promptTokens * promptPrice(model)) / 1e6 : 0
    const retries = opts.routing ? { ...opts.routing.retry, ...opts.routing.targets[name]?.retry }.retries ?? 0 : 0
    return { ok: retries * failed + worst.usd, fail: (retries + 1) * failed, calls: retries + 1 }
  }

  const walk = (n: RouteNode, mode: Mode): Bound => {
    if (typeof n === 'string') return call(n, mode)
    if ('single' in n) return call(n.single, mode)
    if ('fallback' in n) {
      // member i answers after members 0..i-1 failed
      const bs = n.fallback.map((m) => walk(m, mode))
      let failed = 0
      let ok = 0
      for (const b of bs) {
        ok = Math.max(ok, failed + b.ok)
        failed += b.fail
      }
      return { ok, fail: failed, calls: sum(bs.map((b) => b.calls)) }
    }
    if ('loadbalance' in n) {
      // any member may be tried first and any may answer after all the others failed
      const bs = n.loadbalance.map((m) => walk(m.route, mode))
      const failed = sum(bs.map((b) => b.fail))
      return { ok: Math.max(...bs.map((b) => failed - b.fail + b.ok)), fail: failed, calls: sum(bs.map((b) => b.calls)) }
    }
    if ('conditional' in n) {
      const bs = [...n.conditional.map((r) => walk(r.route, mode)), ...(n.default !== undefined ? [walk(n.default, mode)] : [])]
      return { ok: Math.max(...bs.map((b) => b.ok)), fail: Math.max(...bs.map((b) => b.fail)), calls: Math.max(...bs.map((b) => b.calls)) }
    }
    return cascade(n.cascade, mode)
  }

  const cascade = (tiers: CascadeTier[], mode: Mode): Bound => {
    // a score router may start at a later tier: starting at 0 is the dearest case
    let before = 0
    let beforeCalls = 0
    for (let t = 0; ; t++) {
      const tier = tiers[t]!
      const last = t === tiers.length - 1
      // as the router caps tiers: every tier but the last defaults to `cascade_defaults.max_tokens`
      const cap = last ? tier.max_tokens : (tier.max_tokens ?? opts.routing?.cascade_defaults?.max_tokens)
      const override = { ...mode.override, ...tierCap(request, cap) }
      if (last) {
        const b = walk(tier.route, { stream: mode.stream, override })
        return { ok: before + b.ok, fail: before + b.fail, calls: beforeCalls + b.calls }
      }
      // earlier tiers are generated whole, then checked (and judged): a rejected answer is billed
      const b = walk(tier.route, { stream: false, override })
      const judge = tier.checks?.judge ? judgeWorstCase(request, opts.models[tier.checks.judge.target]) : 0
      before += Math.max(b.ok + judge, b.fail)
      beforeCalls += b.calls + (tier.checks?.judge ? 1 : 0)
    }
  }

  const bound = walk(node, { stream: opts.stream, override: {} })
  calls = bound.calls
  const cap = requestedCap(request)
  return {
    usd: Math.max(bound.ok, bound.fail),
    promptTokens,
    outputTokens: cap === undefined ? 0 : cap * Math.max(1, request.n ?? 1),
    capFromRequest: cap !== undefined,
    calls
  }
}

/**
 * The most a cascade judge call can cost: the judge prompt holds the last user message (as the router cuts
 * it) and up to `JUDGE_ANSWER_CHARS` characters of an answer not yet known. A UTF-16 character is at most 3
 * UTF-8 bytes and a token at least one byte, so the answer is bounded by 3 tokens per character; the
 * question part is bounded by its bytes for the same reason (token merges across the join cannot add tokens
 * beyond the byte count). Output: `JUDGE_OUTPUT_TOKENS`.
 *
 * @example
 * judgeWorstCase(request, config.models['gpt-4o-mini'])
 */
export function judgeWorstCase(request: ChatRequest, model: ResolvedModel | undefined): number {
  if (!model) return 0
  const enc = encodingFor(model.model, model.encoding)
  const empty = { choices: [{ index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'stop' }] } as unknown as ChatCompletion
  const [system, user] = judgeMessages(request, empty)
  const userBytes = Buffer.byteLength(typeof user!.content === 'string' ? user!.content : '', 'utf8')
  const tokens = countPromptTokens({ messages: [system!] }, enc) + 3 + countTextTokens(user!.role, enc) + userBytes + 3 * JUDGE_ANSWER_CHARS
  return (tokens * promptPrice(model) + JUDGE_OUTPUT_TOKENS * model.price.output) / 1e6
}

/** The router's tier cap (src/routing/execute.ts `capTokens`): never above what the client asked for. */
function tierCap(req: ChatRequest, cap: number | undefined): Partial<ChatRequest> {
  if (cap === undefined) return {}
  const client = req.max_completion_tokens ?? req.max_tokens
  const value = client != null ? Math.min(client, cap) : cap
  return req.max_completion_tokens != null ? { max_completion_tokens: value } : { max_tokens: value }
}

function sum(xs: number[]): number {
  return xs.reduce((s, x) => s + x, 0)
}
