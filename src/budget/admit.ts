import type { Registry } from 'prom-client'
import type { GatewayConfig, ResolvedModel } from '../config/load.js'
import { admissionGate, setAdmissionGate, type PipelineResult, type RequestContext, type Step } from '../context.js'
import { GatewayError } from '../errors.js'
import type { BudgetCounterSpec, BudgetCounterState, ReserveBudgetResult, SettleBudgetRequest, SettleBudgetResult, Store } from '../store/types.js'
import { postBudgetAlert } from './alerts.js'
import { CLASSIFIER_STATE_KEY, classifierWorstCase } from '../guardrails/classifier.js'
import { OUTPUT_CAP_STATE } from '../providers/call.js'
import type { RouteNode } from '../routing/schema.js'
import type { Target } from '../routing/types.js'
import type { ChatRequest } from '../types.js'
import { DEFAULT_OUTPUT_CAP, toNanos, toNanosCeil, withOutputCap } from './estimate.js'
import { routeWorstCase, type RouteWorstCase } from './route.js'
import { teamKeys } from './keys.js'
import { budgetMetrics, type BudgetMetrics } from './metrics.js'
import { rateLimitBuckets, rateLimitError, rateLimitHeaders } from './ratelimit.js'
import type { Budget } from './schema.js'
import { windowAt, type WindowSpan } from './window.js'

export interface AdmitDeps {
  config: GatewayConfig
  store: Store
  /** prom-client registry for the budget metrics (the gateway's). */
  registry?: Registry
  /** Epoch ms; windows, reservation expiry and token buckets all read this clock (tests inject one). */
  now?: () => number
  /** How long a reservation may live before it counts as orphaned; default: the longest provider timeout plus 60 s. */
  reservationTtlMs?: number
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void
}

/** A budget line applied to one request: its counter in the current window. */
export interface ScopedBudget {
  line: Budget
  /** The scope's id: team, key id, user, session, tag or agent. */
  id: string
  span: WindowSpan
  spec: BudgetCounterSpec
}

const RETRY_SETTLE_MS = 1000
const RETRY_SETTLE_TIMES = 30

/** What admission reserves for a request, and what the rate limiter takes for it. */
export interface AdmissionEstimate {
  /** The most the request can be charged, every provider call together (USD). */
  usd: number
  /** Tokens the TPM buckets take now; corrected to the real usage (`ctx.attempts`) when the request ends. */
  tokens: number
}

export interface AdmitOptions {
  /**
   * A budget with `on_exceed: { downgrade_to }` refused: the estimate of the request moved to that model or
   * route, or undefined when it cannot go there (the request is then refused).
   */
  downgrade?: (to: string) => AdmissionEstimate | undefined
  /**
   * The estimate was an upper bound (prompts not tokenized): the exact one, asked for only where the bound
   * would refuse the request or trip a shadow budget, so neither happens on the bound's slack alone.
   */
  exact?: () => AdmissionEstimate
  /** Which checks to run (both by default): the chat pipeline takes rate limits before the cache and budgets after it. */
  only?: 'rate' | 'budgets'
}

/** The outcome of an admitted request. */
export interface Admitted {
  /** A non-shadow budget applies: what the reservation assumed (the output cap) must hold for every call. */
  enforced: boolean
  /** A budget moved the request: the model or route it moved to, and the budget line that did it. */
  downgraded?: { to: string; line: Budget }
  /**
   * What the tightest non-shadow budget has left once this request is charged `costUsd`, from the counters as its
   * reservation found them: the settled remainder when no other request of the scope ended meanwhile, known
   * without waiting for the settlement. Undefined without a reservation (no budget in scope, the store away).
   */
  remaining?: (costUsd: number) => number | undefined
}

/**
 * Sets `x-sluice-budget-remaining-usd` on a finished non-streamed answer (see `Admitted.remaining`).
 *
 * @example
 * const admitted = await admission.admit(ctx, estimate)
 * // ... the call
 * setRemainingHeader(ctx, admitted)
 */
export function setRemainingHeader(ctx: RequestContext, admitted: Admitted | undefined): void {
  const left = admitted?.remaining?.(ctx.costUsd)
  if (left !== undefined) ctx.responseHeaders['x-sluice-budget-remaining-usd'] = String(Math.round(left * 1e9) / 1e9)
}

/**
 * A budget reservation sent to the store and not read yet (`Admission.begin`). Until `Admission.complete` reads
 * it, it is only a request to the store: a cache hit never reads it, and its end releases what the store took.
 */
export interface BegunReservation {
  readonly scoped: ScopedBudget[]
  readonly usd: number
  /** The store's first reply. */
  readonly first: Promise<ReserveBudgetResult>
  /** `begun` until read; then `held` (settled at the end), `unreserved` (store away, charged at the end) or `none` (refused). */
  state: 'begun' | 'held' | 'unreserved' | 'none'
}

export interface Admission {
  /**
   * Rate limits, then budgets, for one request on any surface; throws the 429 (or the 503 of an unreachable
   * store under `on_store_error: reject`). Settlement is registered on `ctx.onDone`: the reservation is
   * replaced by `ctx.costUsd` when the request ends, so the caller must run `ctx.onDone` on every path.
   */
  admit(ctx: RequestContext, estimate: AdmissionEstimate, opts?: AdmitOptions): Promise<Admitted>
  /**
   * Sends the budget reservation without waiting for its reply (none when no budget is in scope), so that it shares
   * a round trip with what the request asks the store next (the exact-cache read: `store.reserve_early`). Its end
   * callback is registered now: a reservation never read (a cache hit) is released, if the store took it.
   */
  begin(ctx: RequestContext, estimate: AdmissionEstimate): BegunReservation | undefined
  /** Reads a begun reservation and admits or refuses as `admit` does (budgets only). */
  complete(ctx: RequestContext, begun: BegunReservation | undefined, opts?: AdmitOptions): Promise<Admitted>
}

/**
 * Admission, shared by every surface (the chat step below, embeddings in src/gateway.ts).
 *
 * - Rate limits: token buckets per key/team/user (rpm, tpm) taken in one store round trip; a refusal is a
 *   429 with OpenAI's `x-ratelimit-*` headers and `Retry-After`.
 * - Budgets: the estimate is reserved against every budget in scope in one round trip, all or nothing. A
 *   refusal is a 429 `budget_exceeded` with `x-should-retry: false` and no Retry-After, or, with
 *   `on_exceed: { downgrade_to }`, the request moves (its own estimate must fit). Shadow budgets count and
 *   never refuse.
 * - Settlement runs in `ctx.onDone` on every path (success, upstream error, abort, timeout, shutdown):
 *   the reservation is replaced by `ctx.costUsd`, the sum of every attempt's cost.
 *
 * @example
 * const admission = createAdmission({ config, store, registry: metrics.registry })
 * await admission.admit(ctx, { usd: 0.002, tokens: 1200 })
 */
export function createAdmission(deps: AdmitDeps): Admission {
  const { config, store } = deps
  const clock = deps.now ?? Date.now
  const log = deps.log ?? defaultLog
  const metrics = deps.registry ? budgetMetrics(deps.registry) : undefined
  const ttlMs = deps.reservationTtlMs ?? reservationTtl(config)
  const onStoreError = config.store.kind === 'redis' ? config.store.on_store_error : 'reject'
  const alertUrl = config.webhooks.budget_alert_url
  const sessionIdleMs = config.sessions.idle_ttl_s * 1000

  const storeDown = (ctx: RequestContext, op: string, err: unknown): void => {
    metrics?.storeErrors.inc({ team: ctx.principal.team, op, decision: onStoreError })
    log('warn', `${op}: store unreachable (${(err as Error).message}); on_store_error=${onStoreError}`)
    if (onStoreError === 'reject') {
      throw new GatewayError(503, 'Budgets and rate limits cannot be checked right now: the gateway store is unreachable. Retry shortly.', {
        type: 'api_error',
        code: 'budget_store_unavailable',
        headers: { 'retry-after': '1' }
      })
    }
  }

  const admitRate = async (ctx: RequestContext, tokens: number) => {
    const planned = rateLimitBuckets(ctx, ctx.policy.rate_limits, tokens)
    if (planned.length === 0) return
    let result
    try {
      result = await store.rateLimit({ buckets: planned.map((p) => p.bucket), now: clock() })
    } catch (err) {
      storeDown(ctx, 'rate limit', err)
      return
    }
    if (!result.allowed) {
      const p = planned[result.denied!]!
      metrics?.rateLimited.inc({ team: ctx.principal.team, scope: p.line.scope, kind: p.kind })
      throw rateLimitError(planned, result)
    }
    Object.assign(ctx.responseHeaders, rateLimitHeaders(planned, result))
    const tpm = planned.filter((p) => p.kind === 'tokens')
    if (tpm.length === 0) return
    // correct the token buckets with what the request really used (a refund when it used less)
    ctx.onDone.push(async (c) => {
      const used = c.attempts.reduce((s, a) => s + (a.usage?.total_tokens ?? 0), 0)
      const diff = used - tokens
      if (diff === 0) return
      try {
        await store.rateLimit({ buckets: tpm.map((p) => ({ ...p.bucket, cost: diff })), now: clock(), force: true })
      } catch {
        // a missed correction only makes the bucket a little stricter or looser for one minute
      }
    })
  }

  const reserve = async (ctx: RequestContext, scoped: ScopedBudget[], usd: number): Promise<ReserveBudgetResult> => {
    const keys = teamKeys(ctx.principal.team)
    return store.reserveBudget({ reservations: keys.reservations, index: keys.index, id: ctx.id, amountNanos: toNanosCeil(usd), counters: scoped.map((s) => s.spec), now: clock(), ttlMs })
  }

  /** Settles (or, `release`, drops) a reservation, retrying in the background while the store is away. */
  const settleWithRetry = async (ctx: RequestContext, req: SettleBudgetRequest, scoped: ScopedBudget[], release = false, tries = 0): Promise<SettleBudgetResult | undefined> => {
    try {
      const now = clock()
      const res = await (release ? store.releaseBudget({ ...req, now }) : store.settleBudget({ ...req, now }))
      onSettled(ctx, res, scoped)
      return res
    } catch (err) {
      if (tries === 0) metrics?.storeErrors.inc({ team: ctx.principal.team, op: 'settle', decision: 'retry' })
      if (tries >= RETRY_SETTLE_TIMES) {
        log('error', `budget settlement of request ${ctx.id} abandoned after ${tries} retries: ${(err as Error).message}`)
        return undefined
      }
      // the reservation stays (and expires into its worst case) until Redis is back; keep trying in the background
      setTimeout(() => void settleWithRetry(ctx, req, scoped, release, tries + 1), RETRY_SETTLE_MS).unref()
      return undefined
    }
  }

  const onSettled = (ctx: RequestContext, res: SettleBudgetResult, scoped: ScopedBudget[]) => {
    const team = ctx.principal.team
    if (res.status === 'expired') metrics?.expired.inc({ team })
    for (const a of res.alerts) {
      const s = scoped[a.counter]!
      const spent = res.counters[a.counter]!.spentNanos / 1e9
      metrics?.alerts.inc({ team, scope: s.line.scope, window: s.line.window, threshold: String(a.threshold) })
      log('warn', `budget alert: ${describe(team, s)} reached ${Math.round(a.threshold * 100)}% ($${spent.toFixed(6)} of $${s.line.limit_usd})`)
      if (!alertUrl) continue
      postBudgetAlert(alertUrl, {
        team,
        scope: s.line.scope,
        id: s.id,
        window: s.line.window,
        window_start: new Date(s.span.start).toISOString(),
        window_end: Number.isFinite(s.span.end) ? new Date(s.span.end).toISOString() : null,
        threshold: a.threshold,
        limit_usd: s.line.limit_usd,
        spent_usd: spent
      }).catch((err) => {
        metrics?.alertFailures.inc({ team })
        log('warn', `budget alert webhook failed: ${(err as Error).message}`)
      })
    }
  }

  const begin = (ctx: RequestContext, estimate: AdmissionEstimate): BegunReservation | undefined => {
    const scoped = budgetsInScope(ctx, ctx.policy.budgets, clock(), sessionIdleMs)
    if (scoped.length === 0) return undefined
    const first = reserve(ctx, scoped, estimate.usd)
    // read by `complete`, or by the end callback of a request that never got there: not an unhandled rejection
    first.catch(ignore)
    const begun: BegunReservation = { scoped, usd: estimate.usd, first, state: 'begun' }
    const keys = teamKeys(ctx.principal.team)
    ctx.onDone.push(async (c) => {
      const { state } = begun
      if (state === 'none') return
      // never read (a cache hit answered first): drop what the store took, charging nothing
      if (state === 'begun' && !(await first.catch(ignore))?.ok) return
      const counters = scoped.map((s) => s.spec)
      const req = { reservations: keys.reservations, index: keys.index, id: c.id, actualNanos: toNanos(c.costUsd), counters, now: 0, chargeWithoutReservation: state === 'unreserved' }
      await settleWithRetry(c, req, scoped, state === 'begun')
    })
    return begun
  }

  const complete = async (ctx: RequestContext, begun: BegunReservation | undefined, opts: AdmitOptions = {}): Promise<Admitted> => {
    if (!begun) return { enforced: false }
    const { scoped } = begun
    const team = ctx.principal.team
    let downgraded: Admitted['downgraded']
    /** The counters as this request's reservation found them (for `remaining`). */
    let before: BudgetCounterState[] | undefined
    // refused unless it is admitted below (a refusal and a 503 throw)
    begun.state = 'none'
    try {
      let amount = begun.usd
      let res = await begun.first
      const exact = opts.exact && once(opts.exact)
      if (!res.ok && exact && exact().usd < amount) {
        amount = exact().usd
        res = await reserve(ctx, scoped, amount)
      }
      if (!res.ok) {
        const refusing = scoped[res.refused!]!
        const to = typeof refusing.line.on_exceed === 'object' ? refusing.line.on_exceed.downgrade_to : undefined
        const moved = to !== undefined && to !== ctx.alias ? opts.downgrade?.(to) : undefined
        if (to !== undefined && to !== ctx.alias && !moved) log('warn', `budget downgrade_to "${to}" is not a configured model or route of team "${team}"; refusing instead`)
        if (to && moved) {
          const resTo = await reserve(ctx, scoped, moved.usd)
          if (resTo.ok) {
            metrics?.downgrades.inc({ team, from: ctx.alias, to })
            downgraded = { to, line: refusing.line }
            amount = moved.usd
          }
          res = resTo
        }
        if (!res.ok) throw refuse(ctx, scoped[res.refused!]!, res, toNanosCeil(moved && to ? moved.usd : amount))
      }
      let shadows = shadowExceeded(scoped, res, toNanosCeil(amount))
      // a bound that trips a shadow budget is checked again at the exact amount (the reservation stays as made)
      if (shadows.length > 0 && exact && exact().usd < amount) shadows = shadowExceeded(scoped, res, toNanosCeil(exact().usd))
      for (const s of shadows) {
        metrics?.shadowExceeded.inc({ team, scope: s.line.scope, window: s.line.window })
      }
      before = res.counters
      begun.state = 'held'
    } catch (err) {
      if (err instanceof GatewayError) throw err
      storeDown(ctx, 'budget reservation', err)
      begun.state = 'unreserved'
    }

    const counters = before
    return {
      enforced: scoped.some((s) => !s.line.shadow),
      downgraded,
      remaining: counters && ((costUsd) => tightestRemaining(scoped, counters, toNanos(costUsd)))
    }
  }

  const admit = async (ctx: RequestContext, estimate: AdmissionEstimate, opts: AdmitOptions = {}): Promise<Admitted> => {
    if (ctx.policy.rate_limits.length > 0 && opts.only !== 'budgets') await admitRate(ctx, estimate.tokens)
    if (opts.only === 'rate') return { enforced: false }
    return await complete(ctx, begin(ctx, estimate), opts)
  }

  return { admit, begin, complete }

  function refuse(ctx: RequestContext, s: ScopedBudget, res: ReserveBudgetResult, amount: number): GatewayError {
    const state = res.counters[res.refused!]!
    metrics?.rejections.inc({ team: ctx.principal.team, scope: s.line.scope, window: s.line.window })
    const usd = (n: number) => `$${(n / 1e9).toFixed(6)}`
    const resets = Number.isFinite(s.span.end) ? `, resets ${new Date(s.span.end).toISOString()}` : ''
    return new GatewayError(
      429,
      `Budget exceeded: the ${describe(ctx.principal.team, s)} budget is $${s.line.limit_usd} ${windowPhrase(s.line.window)}${resets}; ` +
        `spent ${usd(state.spentNanos)}, reserved by requests in flight ${usd(state.reservedNanos)}, and this request may cost up to ${usd(amount)}.`,
      { type: 'insufficient_quota', code: 'budget_exceeded', headers: { 'x-should-retry': 'false' } }
    )
  }

  /** The shadow budgets this amount would have exceeded (counted, never refused). */
  function shadowExceeded(scoped: ScopedBudget[], res: ReserveBudgetResult, amount: number): ScopedBudget[] {
    return scoped.filter((s, i) => {
      const st = res.counters[i]!
      return s.spec.shadow && st.spentNanos + st.reservedNanos + amount > s.spec.limitNanos
    })
  }
}

/**
 * The admission step for chat requests (every chat surface): the request's worst case through its whole
 * route (`routeWorstCase`: a route alias of the team's policy, else the configured model of that name), plus
 * the injection classifier's calls (`classifierWorstCase`), is admitted with `createAdmission`. A budget's
 * `downgrade_to` may name a model or a route of the team; the move is said in `x-sluice-route`. When a non-shadow budget applies and the request sets no output cap,
 * each provider call is given the cap its model was reserved for (`OUTPUT_CAP_STATE`), so no call can
 * generate past the reservation.
 *
 * @example
 * const admit = createAdmitStep({ config, store, registry: metrics.registry })
 * const run = createPipeline([guardInput, admit, cache, route])
 */
export function createAdmitStep(deps: AdmitDeps, only?: AdmitOptions['only']): Step {
  return chatAdmission(deps, only).admitNow
}

/**
 * The chat budget step split around the cache step, for a store a round trip away (`store.reserve_early`, Redis):
 * `reserve` (before the cache step) sends the reservation without waiting, so it shares one round trip with the
 * exact-cache read; `admit` (after it, where `createAdmitStep(deps, 'budgets')` would be) reads the reply and admits,
 * refuses or downgrades exactly as that step does. A cache hit never reaches `admit`: its reservation is released
 * when it ends, and a spent budget still does not refuse it. Meanwhile the hit's worst case is counted, as a
 * miss's is until it settles: budgets only ever err on the safe side. Only while the store is idle (`Store.idle`):
 * otherwise `admit` reserves after the lookup, as `createAdmitStep` does.
 *
 * @example
 * const { reserve, admit } = createEarlyBudgetSteps({ config, store })
 * const run = createPipeline([guardInput, rate, reserve, cache, admit, route])
 */
export function createEarlyBudgetSteps(deps: AdmitDeps): { reserve: Step; admit: Step } {
  const chat = chatAdmission(deps, 'budgets')
  type Begun = { planned: PlannedAdmission; reservation: BegunReservation | undefined }
  return {
    reserve: (ctx, next) => {
      // Only while the store has nothing in flight, where the saved round trip is pure waiting. Under load the
      // exact-cache read shares its write and its reply's wake-up with other requests' commands anyway, and an early
      // reservation costs CPU: a hit's release, +57 µs a hit at saturation (README, Budgets, "Redis").
      if (deps.store.idle?.() === false) return next()
      const planned = chat.plan(ctx)
      // in the request's own state, not a WeakMap keyed by it: ephemerons make every scavenge dearer
      if (planned) ctx.state[BEGUN_STATE] = { planned, reservation: chat.admission.begin(ctx, planned.estimate) } satisfies Begun
      return next()
    },
    admit: async (ctx, next) => {
      const b = ctx.state[BEGUN_STATE] as Begun | undefined
      if (!b) return chat.admitNow(ctx, next)
      return chat.proceed(ctx, b.planned, await chat.admission.complete(ctx, b.reservation, b.planned.opts), next)
    }
  }
}

/**
 * The chat rate-limit step split around the cache step, for a store a round trip away (`store.reserve_early`, Redis):
 * `rate` (before the cache step, where `createAdmitStep(deps, 'rate')` would be) sends the check and goes on without
 * its verdict, which becomes the request's admission gate (`setAdmissionGate`); the check then shares one round trip
 * with the exact-cache read (and an early reservation, sent just before it). The cache step reads the gate before it
 * serves a hit or looks further, and `gate` (after the cache step) before a miss goes on: a refused request is refused
 * as before (429, the same headers and metrics), is never served from the cache, and no provider sees it. Unlike the
 * early reservation it costs no command of its own, so it does not wait for an idle store.
 *
 * @example
 * const { rate, gate } = createEarlyRateSteps({ config, store })
 * const run = createPipeline([guardInput, reserve, rate, cache, gate, admit, route])
 */
export function createEarlyRateSteps(deps: AdmitDeps): { rate: Step; gate: Step } {
  const chat = chatAdmission(deps, 'rate')
  return {
    rate: (ctx, next) => {
      const planned = chat.plan(ctx)
      // the command goes out now (admit runs up to the store call before it awaits); only the verdict is left
      if (planned) setAdmissionGate(ctx, chat.admission.admit(ctx, planned.estimate, planned.opts))
      return next()
    },
    gate: (ctx, next) => {
      const gate = admissionGate(ctx)
      return gate ? gate.then(() => next()) : next()
    }
  }
}

/** `ctx.state` key of the reservation `createEarlyBudgetSteps` sent before the cache step. */
const BEGUN_STATE = 'budget.begun'

/** What a chat request is admitted for: its worst case through its route, and how to re-price it. */
interface PlannedAdmission {
  worst: RouteWorstCase
  estimate: AdmissionEstimate
  opts: AdmitOptions
}

/**
 * The chat admission's two halves: what to reserve (`plan`), and what an admission changes on the request
 * (`proceed`); `admitNow` is the step that runs both around one `admit`.
 */
function chatAdmission(deps: AdmitDeps, only?: AdmitOptions['only']) {
  const { config } = deps
  const admission = createAdmission(deps)

  /** The strategy behind a public name, as the router resolves it: the team's route first, then the model. */
  const route = (ctx: RequestContext, alias: string, request: ChatRequest, bound = false): RouteWorstCase | undefined => {
    const routing = ctx.policy.routing
    const node: RouteNode | undefined = routing && Object.hasOwn(routing.routes, alias) ? routing.routes[alias] : config.models[alias] ? alias : undefined
    if (node === undefined) return undefined
    return routeWorstCase(request, node, { models: config.models, routing, stream: ctx.stream, bound })
  }

  const plan = (ctx: RequestContext): PlannedAdmission | undefined => {
    const budgets = only === 'rate' ? [] : ctx.policy.budgets
    const rateLimits = only === 'budgets' ? [] : ctx.policy.rate_limits
    if (budgets.length === 0 && rateLimits.length === 0) return undefined
    // Budgets and request rate limits reserve an upper bound of the prompt (no tokenizer run on text not seen before)
    // and count it exactly only where that bound would refuse; token rate limits take the exact count up front.
    const bound = !rateLimits.some((r) => r.tpm !== undefined)
    const worst = route(ctx, ctx.alias, ctx.request, bound)
    // an unknown name: the router answers 404 without a call
    if (!worst) return undefined
    // the injection classifier step (after this one) calls a model of its own, whatever the route
    const classifier = classifierWorstCase(ctx.policy, ctx.request, config.models, ctx.state[CLASSIFIER_STATE_KEY] as boolean[] | undefined)
    const estimate = (w: RouteWorstCase): AdmissionEstimate => ({
      usd: w.usd + classifier.usd,
      tokens: w.promptTokens + w.outputTokens + classifier.promptTokens + classifier.outputTokens
    })
    return {
      worst,
      estimate: estimate(worst),
      opts: {
        only,
        exact: bound ? () => estimate(route(ctx, ctx.alias, ctx.request)!) : undefined,
        downgrade: (to) => {
          const w = route(ctx, to, { ...ctx.request, model: to })
          return w && estimate(w)
        }
      }
    }
  }

  const proceed = async (ctx: RequestContext, planned: PlannedAdmission, admitted: Admitted, next: () => Promise<PipelineResult>): Promise<PipelineResult> => {
    const from = ctx.alias
    if (admitted.downgraded) {
      ctx.alias = admitted.downgraded.to
      ctx.request = { ...ctx.request, model: admitted.downgraded.to }
    }
    // the reservation assumed each model's own output cap: make it explicit on every call
    if (admitted.enforced && !planned.worst.capFromRequest) ctx.state[OUTPUT_CAP_STATE] = capOutput

    const result = await next()
    if (result.type === 'json') setRemainingHeader(ctx, admitted)
    if (admitted.downgraded) {
      const l = admitted.downgraded.line
      ctx.responseHeaders['x-sluice-route'] = `${ctx.alias}; downgraded-from=${from}; budget=${l.scope}/${l.window}`
    }
    return result
  }

  const admitNow: Step = async (ctx, next) => {
    const planned = plan(ctx)
    if (!planned) return next()
    return proceed(ctx, planned, await admission.admit(ctx, planned.estimate, planned.opts), next)
  }

  return { admission, plan, proceed, admitNow }
}

/** A call's request with the output cap its model was reserved for, when the request sets none. */
function capOutput(request: ChatRequest, target: Target): ChatRequest {
  return withOutputCap(request, target.model, target.model.max_output_tokens ?? DEFAULT_OUTPUT_CAP)
}

/**
 * The budget lines of a policy that apply to a request, each with its counter in the current window.
 * Lines that land on the same counter (same scope, id and window) merge into the tightest limit; a tag
 * line without `tag` applies to each of the request's tags. A windowless session counter expires `sessionIdleMs`
 * after `now` (`sessions.idle_ttl_s`; 0 = never).
 *
 * @example
 * budgetsInScope(ctx, policy.budgets, Date.now(), 86_400_000).map((s) => s.spec.key)
 */
export function budgetsInScope(ctx: Pick<RequestContext, 'principal' | 'session' | 'agent' | 'tags'>, lines: Budget[], now: number, sessionIdleMs = 0): ScopedBudget[] {
  const keys = teamKeys(ctx.principal.team)
  const byKey = new Map<string, ScopedBudget>()
  for (const line of lines) {
    for (const id of scopeIds(ctx, line)) {
      const span = windowAt(line.window, now)
      const key = keys.counter(line.scope, id, line.window, span)
      const limitNanos = Math.floor(line.limit_usd * 1e9)
      const expireAt = counterExpiry(line.scope, span, now, sessionIdleMs)
      const alertAt = line.alert_at?.length ? line.alert_at : undefined
      const seen = byKey.get(key)
      if (!seen) {
        byKey.set(key, { line, id, span, spec: { key, limitNanos, shadow: line.shadow, expireAt, alertAt } })
        continue
      }
      // a real limit beats a shadow one; between equals, the tighter
      const tighter = (seen.spec.shadow && !line.shadow) || (seen.spec.shadow === line.shadow && limitNanos < seen.spec.limitNanos)
      const mergedAlerts = [...new Set([...(seen.spec.alertAt ?? []), ...(alertAt ?? [])])]
      if (tighter) byKey.set(key, { line, id, span, spec: { key, limitNanos, shadow: line.shadow, expireAt, alertAt: mergedAlerts.length ? mergedAlerts : undefined } })
      else seen.spec.alertAt = mergedAlerts.length ? mergedAlerts : undefined
    }
  }
  return [...byKey.values()]
}

/**
 * When a counter may be dropped: a window past its window's end, so the last window stays readable; a windowless
 * session counter `sessionIdleMs` after this request (every reservation pushes it out: an idle session is
 * forgotten, an active one never); other windowless counters never (0).
 */
function counterExpiry(scope: Budget['scope'], span: WindowSpan, now: number, sessionIdleMs: number): number {
  if (Number.isFinite(span.end)) return span.end + (span.end - span.start)
  return scope === 'session' && sessionIdleMs > 0 ? now + sessionIdleMs : 0
}

function scopeIds(ctx: Pick<RequestContext, 'principal' | 'session' | 'agent' | 'tags'>, line: Budget): string[] {
  switch (line.scope) {
    case 'team':
      return [ctx.principal.team]
    case 'key':
      return [ctx.principal.keyId]
    case 'user':
      return ctx.principal.user ? [ctx.principal.user] : []
    case 'session':
      return ctx.session ? [ctx.session] : []
    case 'agent':
      return ctx.agent ? [ctx.agent] : []
    case 'tag':
      return line.tag ? (ctx.tags.includes(line.tag) ? [line.tag] : []) : ctx.tags
  }
}

/** What the tightest non-shadow budget has left once `costNanos` is charged to the counters as they were. */
function tightestRemaining(scoped: ScopedBudget[], counters: BudgetCounterState[], costNanos: number): number | undefined {
  let min: number | undefined
  scoped.forEach((s, i) => {
    if (s.spec.shadow) return
    const st = counters[i]!
    const left = Math.max(0, s.spec.limitNanos - st.spentNanos - st.reservedNanos - costNanos) / 1e9
    if (min === undefined || left < min) min = left
  })
  return min
}

function describe(team: string, s: ScopedBudget): string {
  return s.line.scope === 'team' ? `team "${team}"` : `${s.line.scope} "${s.id}" (team "${team}")`
}

function windowPhrase(window: Budget['window']): string {
  return window === 'total' ? 'in total' : `per ${window} (UTC)`
}

/** Longest a legitimate request can hold a reservation: the longest provider timeout (or server request timeout), plus a minute. */
export function reservationTtl(config: GatewayConfig): number {
  let longest = config.server.request_timeout_ms
  for (const p of Object.values(config.providers)) if ('timeouts' in p) longest = Math.max(longest, p.timeouts.total_ms)
  return longest + 60_000
}

/** A rejection handler for a promise whose failure is read elsewhere. */
function ignore(): undefined {
  return undefined
}

/** A thunk computed on its first call only. */
function once<T>(f: () => T): () => T {
  let done = false
  let value: T
  return () => {
    if (!done) {
      value = f()
      done = true
    }
    return value
  }
}

function defaultLog(level: 'info' | 'warn' | 'error', msg: string): void {
  const line = JSON.stringify({ time: new Date().toISOString(), level, msg })
  if (level === 'error') console.error(line)
  else console.log(line)
}

export type { ResolvedModel, BudgetMetrics }
