import type { Step } from '../context.js'
import type { Runtime } from '../gateway.js'
import { createAdmission, createAdmitStep, createEarlyBudgetSteps, createEarlyRateSteps, type Admission, type AdmitDeps } from './admit.js'

export { createAdmission, createAdmitStep, createEarlyBudgetSteps, createEarlyRateSteps, setRemainingHeader, budgetsInScope, reservationTtl, type Admission, type AdmissionEstimate, type BegunReservation, type Admitted, type AdmitDeps, type AdmitOptions, type ScopedBudget } from './admit.js'
export { worstCase, withOutputCap, promptPrice, requestedCap, embeddingWorstCase, DEFAULT_OUTPUT_CAP } from './estimate.js'
export { routeWorstCase, judgeWorstCase, type RouteWorstCase } from './route.js'
export { budgetMetrics } from './metrics.js'
export { windowAt } from './window.js'
export { teamKeys, parseCounterKey } from './keys.js'

/**
 * The admission step for a runtime — rate limits, budgets, or both — or none when no team policy has them.
 * The chat pipeline takes rate limits before the cache (a hit still counts as a request) and budgets after it
 * (a hit costs nothing, so it reserves nothing; on Redis see `earlyBudgetSteps`).
 *
 * @example
 * steps.push(admitStep(rt, 'rate'), cacheStep(rt), admitStep(rt, 'budgets'))
 */
export function admitStep(rt: Runtime, only?: 'rate' | 'budgets'): Step | undefined {
  return policiesUse(rt, only) ? createAdmitStep(admitDeps(rt), only) : undefined
}

/**
 * The budget step split around the cache step (`createEarlyBudgetSteps`), where the store is a round trip away
 * and `store.reserve_early` is on (Redis, by default): while the store is idle, the reservation and the exact-cache
 * read share one round trip. None when no team policy has budgets, or the store is in-process (nothing to share there).
 *
 * @example
 * const early = earlyBudgetSteps(rt)
 * steps.push(admitStep(rt, 'rate'), early?.reserve, cacheStep(rt), early?.admit ?? admitStep(rt, 'budgets'))
 */
export function earlyBudgetSteps(rt: Runtime): { reserve: Step; admit: Step } | undefined {
  return sendsEarly(rt) && policiesUse(rt, 'budgets') ? createEarlyBudgetSteps(admitDeps(rt)) : undefined
}

/**
 * The rate-limit step split around the cache step (`createEarlyRateSteps`), under the same setting as
 * `earlyBudgetSteps` (`store.reserve_early`, Redis): the check shares the exact-cache read's round trip, and `gate`
 * goes after the cache step. None when no team policy has rate limits, or the store is in-process.
 *
 * @example
 * const rate = earlyRateSteps(rt)
 * steps.push(early?.reserve, rate?.rate ?? admitStep(rt, 'rate'), cacheStep(rt), rate?.gate, early?.admit ?? admitStep(rt, 'budgets'))
 */
export function earlyRateSteps(rt: Runtime): { rate: Step; gate: Step } | undefined {
  return sendsEarly(rt) && policiesUse(rt, 'rate') ? createEarlyRateSteps(admitDeps(rt)) : undefined
}

/** Whether some team policy has budgets (`budgets`), rate limits (`rate`), or either. */
function policiesUse(rt: Runtime, only?: 'rate' | 'budgets'): boolean {
  return Object.values(rt.config.policies).some((p) => (only !== 'rate' && p.budgets.length > 0) || (only !== 'budgets' && p.rate_limits.length > 0))
}

/** Whether admission commands go out before the cache lookup: a store a round trip away, with `store.reserve_early`. */
function sendsEarly(rt: Runtime): boolean {
  const store = rt.config.store
  return store.kind === 'redis' && store.reserve_early
}

/** What every admission of a runtime is made from. */
function admitDeps(rt: Runtime): AdmitDeps {
  return { config: rt.config, store: rt.store, registry: rt.metrics.registry, log: rt.log }
}

const admissions = new WeakMap<Runtime, Admission | undefined>()

/**
 * The admission of a runtime for surfaces outside the chat pipeline (embeddings), or none when no team
 * policy has budgets or rate limits. Same rules, counters and settlement as the chat step.
 *
 * @example
 * await admissionFor(rt)?.admit(ctx, { usd: worst.usd, tokens: worst.tokens })
 */
export function admissionFor(rt: Runtime): Admission | undefined {
  if (admissions.has(rt)) return admissions.get(rt)
  const admission = policiesUse(rt) ? createAdmission(admitDeps(rt)) : undefined
  admissions.set(rt, admission)
  return admission
}
