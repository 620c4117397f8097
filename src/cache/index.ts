import type { TeamPolicy } from '../config/schema.js'
import type { RequestContext, Step } from '../context.js'
import type { Runtime } from '../gateway.js'
import { routeFingerprint } from './key.js'
import { createCacheStep } from './step.js'

export { createCacheStep, type CacheStepDeps, type CachedAnswer } from './step.js'
export { createSemanticEngine, semanticCacheWanted, type SemanticEngine } from './engine.js'
export { placeCacheBreakpoints, providerCacheSavings } from './prompt-caching.js'
export { cachePolicySchema, semanticCacheConfigSchema, resolveCachePolicy, type CachePolicy, type ProviderCachePolicy } from './schema.js'

/**
 * The cache step for a runtime: exact and semantic lookups for teams with a `cache:` section, and the
 * provider prompt-cache metrics for every team (a team without `cache:` costs one callback per request).
 *
 * @example
 * steps.push(cacheStep(rt))
 */
export function cacheStep(rt: Runtime): Step {
  return createCacheStep({
    store: rt.store,
    registry: rt.metrics.registry,
    semantic: rt.semanticCache?.current,
    ledger: rt.ledger,
    priceFor: (attempt) => rt.targets.get(attempt.target)?.model.price,
    routeOf: memoRoutes(rt),
    onError: rt.log ? (err, where) => rt.log!('warn', `cache ${where} failed: ${(err as Error)?.message ?? err}`) : undefined
  })
}

/**
 * Route fingerprints of one runtime, computed once per (policy, alias): the runtime, its config and its
 * policies are rebuilt on every reload, so a reload starts a fresh memo and nothing here goes stale.
 * Aliases that resolve to nothing are not memoised (unknown model names must not grow the map).
 */
function memoRoutes(rt: Runtime): (ctx: RequestContext) => string | undefined {
  const memo = new WeakMap<TeamPolicy, Map<string, string>>()
  return (ctx) => {
    let byAlias = memo.get(ctx.policy)
    if (!byAlias) memo.set(ctx.policy, (byAlias = new Map()))
    let fp = byAlias.get(ctx.alias)
    if (fp === undefined) {
      fp = routeFingerprint(rt.config, ctx.policy, ctx.alias)
      if (fp !== undefined) byAlias.set(ctx.alias, fp)
    }
    return fp
  }
}
