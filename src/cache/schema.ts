import { z } from 'zod'

/**
 * When a response may be cached (and served from cache):
 * - `always`: every request (agents re-sending the same prompt want the same answer);
 * - `temperature_zero`: only requests that set `temperature: 0` (a sampled answer is not replayed).
 */
export const cacheWhenSchema = z.enum(['always', 'temperature_zero'])

const exactPolicySchema = z.strictObject({
  enabled: z.boolean().default(true)
})

const semanticPolicySchema = z.strictObject({
  enabled: z.boolean().default(false),
  /** Cosine similarity a candidate needs; the embedder's measured default when absent. */
  threshold: z.number().gt(0).max(1).optional(),
  /** Overrides the section's ttl_s for semantic entries. */
  ttl_s: z.number().int().positive().optional(),
  /** Longer last user turns are not embedded (a long prompt is rarely re-asked in other words). */
  max_query_chars: z.number().int().positive().default(4000),
  /** Nearest entries fetched per lookup (above the threshold), checked best first by the guard. */
  max_candidates: z.number().int().min(1).max(100).default(5),
  /**
   * The meaning-flip guard (negations, numbers, polar words, identifiers, word order). Turning it off lets
   * the threshold alone decide: more hits, and some that answer the opposite question.
   */
  guard: z.boolean().default(true)
})

const providerPolicySchema = z.strictObject({
  /** Insert Anthropic `cache_control` breakpoints automatically. */
  enabled: z.boolean().default(true),
  system: z.boolean().default(true),
  tools: z.boolean().default(true),
  /** Breakpoints on the conversation prefix (final message and the previous turn's final message). */
  conversation: z.boolean().default(true),
  /** Skip a breakpoint whose prefix is shorter than this (Anthropic caches nothing under 1,024 tokens). */
  min_prefix_tokens: z.number().int().nonnegative().default(1024)
})

/**
 * The `cache:` section of a team policy. Absent means: no response caching for the team (exact and
 * semantic off), provider prompt caching on with its defaults.
 *
 * @example
 * cache:
 *   when: temperature_zero
 *   ttl_s: 600
 *   semantic: { enabled: true, threshold: 0.9, max_candidates: 5, guard: true }
 */
export const cachePolicySchema = z.strictObject({
  /** Master switch for the exact and semantic layers. */
  enabled: z.boolean().default(true),
  /** Share the cache under this name instead of the team (teams with the same scope share answers). */
  scope: z.string().min(1).optional(),
  when: cacheWhenSchema.default('always'),
  ttl_s: z.number().int().positive().default(3600),
  /** Larger answers are not stored. */
  max_entry_bytes: z.number().int().positive().default(256 * 1024),
  exact: exactPolicySchema.prefault({}),
  semantic: semanticPolicySchema.prefault({}),
  provider: providerPolicySchema.prefault({})
})
export type CachePolicy = z.infer<typeof cachePolicySchema>
export type ProviderCachePolicy = CachePolicy['provider']

/** The policy a team without a `cache:` section gets. */
export const noCachePolicy: CachePolicy = cachePolicySchema.parse({ enabled: false })

/** Defaults filled in, whether the policy had a `cache:` section or not. */
export function resolveCachePolicy(policy: CachePolicy | undefined): CachePolicy {
  return policy ?? noCachePolicy
}

/**
 * Gateway-level engine of the semantic cache (one per gateway, shared by teams; scope keeps them apart).
 * Meant for the gateway config as `semantic_cache:`.
 *
 * @example
 * semantic_cache:
 *   embedder: { kind: builtin }
 *   index: { kind: memory, max_entries: 25000 }
 */
export const semanticCacheConfigSchema = z.strictObject({
  embedder: z
    .discriminatedUnion('kind', [
      z.strictObject({ kind: z.literal('builtin'), dimensions: z.number().int().min(64).max(4096).default(256) }),
      /** A llama provider from `providers:` with `embedding: true`, or a GGUF path the gateway loads. */
      z
        .strictObject({ kind: z.literal('llama'), provider: z.string().min(1).optional(), model_path: z.string().min(1).optional() })
        .refine((e) => (e.provider === undefined) !== (e.model_path === undefined), {
          message:
            'kind: llama needs exactly one of provider (the name of a providers: entry of kind llama with embedding: true) ' +
            'or model_path (a GGUF embedding model the gateway loads for the cache)'
        }),
      /** An embedding model from `models:` (type: embedding). */
      z.strictObject({ kind: z.literal('upstream'), model: z.string() })
    ])
    .prefault({ kind: 'builtin' }),
  index: z
    .discriminatedUnion('kind', [
      // ~1.9 KB of RSS per entry: larger indexes belong in Qdrant
      z.strictObject({
        kind: z.literal('memory'),
        max_entries: z.number().int().positive().default(25_000),
        /**
         * How a scope past 1,024 entries is searched (README, Caching, "Index latency"): fewer probes or more bits
         * per table make a crowded search cheaper and miss more neighbours near the threshold.
         */
        lsh: z
          .strictObject({
            tables: z.number().int().min(1).max(64).default(16),
            bits: z.number().int().min(8).max(30).default(18),
            probes: z.number().int().min(0).max(64).default(8)
          })
          .prefault({})
      }),
      z.strictObject({
        kind: z.literal('qdrant'),
        url: z.string(),
        api_key: z.string().optional(),
        collection: z.string().default('sluice_semantic_cache'),
        /** Per request to Qdrant; a lookup that times out is a miss, an upsert that times out is logged. */
        timeout_ms: z.number().int().positive().default(5_000),
        /** Expired points are deleted every this many upserts (Qdrant has no TTL of its own). */
        prune_every: z.number().int().positive().default(500)
      })
    ])
    .prefault({ kind: 'memory' })
})
export type SemanticCacheConfig = z.infer<typeof semanticCacheConfigSchema>
