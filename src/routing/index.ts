import type { RequestContext, Step } from '../context.js'
import { GatewayError, UpstreamError } from '../errors.js'
import type { TargetCaller } from '../providers/call.js'
import type { Target } from './types.js'

export interface RouterDeps {
  /** The target a public model name maps to (config lookup). */
  resolveTarget: (name: string) => Target | undefined
  callTarget: TargetCaller
}

/**
 * The plan-and-call step, last in the pipeline: turns the public model name into targets and calls them.
 * The single-target plan; routing strategies (fallback, cascade, …) extend the plan.
 *
 * @example
 * const route = createRouter({ resolveTarget, callTarget })
 */
export function createRouter(deps: RouterDeps): Step {
  return async (ctx: RequestContext) => {
    const target = deps.resolveTarget(ctx.alias)
    if (!target) throw new GatewayError(404, `The model "${ctx.alias}" does not exist or you do not have access to it.`, { code: 'model_not_found', param: 'model' })
    ctx.responseHeaders['x-sluice-route'] = target.name
    try {
      return await deps.callTarget(ctx, target)
    } finally {
      ctx.responseHeaders['x-sluice-attempts'] = String(ctx.attempts.length)
    }
  }
}

export { UpstreamError }
