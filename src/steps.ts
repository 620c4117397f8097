import type { Step } from './context.js'
import type { Runtime } from './gateway.js'
import { createGuardInputStep, createGuardOutputStep } from './guardrails/index.js'
import { admitStep, earlyBudgetSteps, earlyRateSteps } from './budget/index.js'
import { cacheStep } from './cache/index.js'
import { createClassifierStep } from './guardrails/classifier.js'
import { createTargetCaller } from './providers/call.js'
import type { GuardrailEvent } from './guardrails/record.js'

/**
 * The steps between identify and plan/call, in the order of the request path:
 * guard input → guard output → rate limits → look up (caches) → budgets → injection classifier.
 *
 * Budgets come after the caches: a hit costs nothing, so it is charged nothing (and is served even when a
 * budget is spent); rate limits come before them, so a hit still counts as a request. On Redis (`store.reserve_early`)
 * the rate-limit check and, while Redis has nothing in flight, the reservation are sent before the lookup and read
 * after it: one round trip for all three; a hit releases the reservation, and a refused request is never served.
 *
 * The output guard sits outside the caches on purpose: cached answers keep reversible-redaction
 * placeholders and are restored (and masked) per request, so one user's values never reach another.
 * Each step passes straight through when the team's policy does not use it.
 */
export function pipelineSteps(rt: Runtime): Step[] {
  const log = rt.log
  const record = (e: GuardrailEvent) => {
    rt.guardrailEvents.push(e)
    // one structured line per action, fleet-wide in the log pipeline; the event never holds matched text
    log?.('info', `guardrail ${e.layer} ${e.rule}: ${e.action}`, { event: 'guardrail', request_id: e.requestId, team: e.team, session: e.session, layer: e.layer, rule: e.rule, action: e.action, count: e.count })
  }
  const guardDeps = { store: rt.store, registry: rt.metrics.registry, record }
  // on Redis the budget reservation is sent before the lookup, sharing the exact-cache read's round trip
  const early = earlyBudgetSteps(rt)
  // ... and the rate-limit check too, its verdict read before a hit is served or a miss goes on. The reservation goes
  // first: its idle check must not see this request's own rate command
  const rate = earlyRateSteps(rt)
  const steps: (Step | undefined)[] = [createGuardInputStep(guardDeps), createGuardOutputStep(guardDeps),
    ...(rate ? [early?.reserve, rate.rate] : [admitStep(rt, 'rate'), early?.reserve]), cacheStep(rt), rate?.gate, early?.admit ?? admitStep(rt, 'budgets'),
    // a model call of its own: after budgets and the cache, so it is admitted first and a hit never pays for it
    createClassifierStep({ ...guardDeps, resolveTarget: (n) => rt.targets.get(n), callTarget: createTargetCaller({ ledger: rt.ledger, metrics: rt.metrics }) })]
  return steps.filter((s): s is Step => s !== undefined)
}
