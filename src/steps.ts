import type { Step } from './context.js'
import type { Runtime } from './gateway.js'

/**
 * The steps between identify and plan/call, in the order of the request path:
 * guard input → admit (budgets, rate limits) → look up (caches) → guard output.
 * Each factory returns no step when no team policy uses it, so unused layers cost nothing.
 */
export function pipelineSteps(rt: Runtime): Step[] {
  const steps: (Step | undefined)[] = []
  void rt
  return steps.filter((s): s is Step => s !== undefined)
}
