import type { Step } from '../context.js'
import type { Runtime } from '../gateway.js'
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
    onError: rt.log ? (err, where) => rt.log!('warn', `cache ${where} failed: ${(err as Error)?.message ?? err}`) : undefined
  })
}
