import { Gauge, type Registry } from 'prom-client'
import { counter, histogram } from '../metrics/deferred.js'

export type CacheLayer = 'exact' | 'semantic' | 'provider'
export type CacheResult = 'hit' | 'miss' | 'bypass'

export interface CacheMetrics {
  request(layer: CacheLayer, result: CacheResult, team: string): void
  saved(layer: CacheLayer, team: string, tokens: number, usd: number): void
  semanticLookup(seconds: number): void
}

/**
 * The cache's Prometheus metrics, registered once per registry (a second call returns the same ones).
 * `indexSize` is read at scrape time.
 *
 * @example
 * const metrics = createCacheMetrics(registry, () => index.size())
 * metrics.request('exact', 'hit', 'research')
 */
export function createCacheMetrics(registry: Registry, indexSize?: () => Promise<number>): CacheMetrics {
  const requests = single(registry, 'sluice_cache_requests_total', () =>
    counter({
      name: 'sluice_cache_requests_total',
      help: 'Cache lookups by layer (exact, semantic, provider) and result (hit, miss, bypass).',
      labelNames: ['layer', 'result', 'team'] as const,
      registers: [registry]
    })
  )
  const savedTokens = single(registry, 'sluice_cache_saved_tokens_total', () =>
    counter({
      name: 'sluice_cache_saved_tokens_total',
      help: 'Tokens not paid for at full price thanks to a cache layer.',
      labelNames: ['layer', 'team'] as const,
      registers: [registry]
    })
  )
  const savedUsd = single(registry, 'sluice_cache_saved_usd_total', () =>
    counter({
      name: 'sluice_cache_saved_usd_total',
      help: 'USD saved by a cache layer (provider layer: net of cache-write premiums).',
      labelNames: ['layer', 'team'] as const,
      registers: [registry]
    })
  )
  const lookup = single(registry, 'sluice_cache_semantic_lookup_seconds', () =>
    histogram({
      name: 'sluice_cache_semantic_lookup_seconds',
      help: 'Semantic cache lookup time: embedding plus vector search.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry]
    })
  )
  if (indexSize) {
    single(registry, 'sluice_cache_semantic_index_entries', () =>
      new Gauge({
        name: 'sluice_cache_semantic_index_entries',
        help: 'Entries in the semantic cache index.',
        registers: [registry],
        async collect() {
          this.set(await indexSize())
        }
      })
    )
  }
  return {
    request: (layer, result, team) => requests.inc({ layer, result, team }),
    saved(layer, team, tokens, usd) {
      if (tokens > 0) savedTokens.inc({ layer, team }, tokens)
      if (usd > 0) savedUsd.inc({ layer, team }, usd)
    },
    semanticLookup: (seconds) => lookup.observe(seconds)
  }
}

function single<T>(registry: Registry, name: string, create: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? create()
}
