import { z } from 'zod'
import { budgetSchema, rateLimitSchema } from '../budget/schema.js'
import { cachePolicySchema, semanticCacheConfigSchema } from '../cache/schema.js'
import { routingPolicySchema } from '../routing/schema.js'
import { guardrailsPolicySchema } from '../guardrails/schema.js'
import { telemetrySchema } from '../otel/schema.js'

/** Prices in USD per million tokens. */
export const priceSchema = z.strictObject({
  input: z.number().nonnegative(),
  output: z.number().nonnegative(),
  cached_input: z.number().nonnegative().optional(),
  cache_write: z.number().nonnegative().optional()
})
export type Price = z.infer<typeof priceSchema>

const timeoutsSchema = z.strictObject({
  connect_ms: z.number().int().positive().default(10_000),
  first_byte_ms: z.number().int().positive().default(60_000),
  total_ms: z.number().int().positive().default(600_000)
})

const httpProviderBase = {
  api_key: z.string().optional(),
  headers: z.record(z.string(), z.string()).optional(),
  timeouts: timeoutsSchema.prefault({}),
  max_connections: z.number().int().positive().default(256)
}

export const providerSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('openai'),
    base_url: z.url(),
    /** Whether the upstream speaks the Responses API: /v1/responses is passed through to it, else translated to chat. */
    responses_api: z.boolean().default(true),
    ...httpProviderBase
  }),
  z.strictObject({
    kind: z.literal('anthropic'),
    base_url: z.url().default('https://api.anthropic.com'),
    version: z.string().default('2023-06-01'),
    ...httpProviderBase
  }),
  z.strictObject({
    kind: z.literal('llama'),
    model_path: z.string(),
    /** Load at start (default) or on first use. */
    load: z.enum(['start', 'lazy']).default('lazy'),
    context_size: z.number().int().positive().default(2048),
    /** Parallel sequences; further requests queue. */
    concurrency: z.number().int().positive().default(2),
    gpu: z.union([z.literal(false), z.enum(['auto', 'cuda', 'metal', 'vulkan'])]).default(false),
    embedding: z.boolean().default(false),
    /** CPU threads for llama.cpp; defaults to available parallelism minus one. More threads than free cores is very slow. */
    threads: z.number().int().positive().optional()
  })
])
export type ProviderConfig = z.infer<typeof providerSchema>

export const modelSchema = z.strictObject({
  provider: z.string(),
  model: z.string(),
  price: priceSchema.optional(),
  /** Output cap used for worst-case cost estimates when a request sets no max_tokens. */
  max_output_tokens: z.number().int().positive().optional(),
  context_window: z.number().int().positive().optional(),
  /** tiktoken encoding for counting (defaults from the model name). */
  encoding: z.string().optional(),
  type: z.enum(['chat', 'embedding']).default('chat')
})
export type ModelConfig = z.infer<typeof modelSchema>

export const keySchema = z
  .strictObject({
    key: z.string().min(8).optional(),
    key_sha256: z.string().regex(/^[0-9a-f]{64}$/, 'a lower-case hex SHA-256').optional(),
    team: z.string(),
    user: z.string().optional(),
    name: z.string().optional()
  })

export const teamPolicySchema = z.strictObject({
  /** Public model names this team may use; all when absent. */
  models: z.array(z.string()).optional(),
  budgets: z.array(budgetSchema).default([]),
  rate_limits: z.array(rateLimitSchema).default([]),
  cache: cachePolicySchema.optional(),
  routing: routingPolicySchema.optional(),
  guardrails: guardrailsPolicySchema.optional()
})
export type TeamPolicy = z.infer<typeof teamPolicySchema>

export const storeSchema = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('memory'),
    // ~1.3 KB of RSS per ledger entry: 20k keeps the embedded default well inside a small container
    max_ledger_entries: z.number().int().positive().default(20_000),
    /** Bytes the exact-cache namespace may hold before least-recently-used entries are evicted. */
    max_cache_bytes: z.number().int().positive().default(32 * 1024 * 1024)
  }),
  z.strictObject({
    kind: z.literal('redis'),
    url: z.string().optional(),
    /** Redis Cluster seed nodes. */
    urls: z.array(z.string()).optional(),
    prefix: z.string().default('sluice:'),
    /** What admission does when Redis cannot be reached. */
    on_store_error: z.enum(['reject', 'allow']).default('reject'),
    max_ledger_entries: z.number().int().positive().default(1_000_000),
    /** ioredis auto-pipelining: one batch in flight per node, so commands wait on replies; else writes batched per batch_writes. */
    auto_pipelining: z.boolean().default(false),
    /** Commands share one write per event-loop turn (default: the least CPU) or per tick (no command waits for the turn's end). */
    batch_writes: z.enum(['turn', 'tick']).default('turn'),
    /**
     * The rate-limit check, and while no command awaits a reply the budget reservation, go out before the cache lookup
     * with the exact-cache read: one round trip before the upstream call instead of two (three with rate limits). A
     * cache hit releases the reservation (never refused by it); a rate-refused request is never served from a cache.
     */
    reserve_early: z.boolean().default(true),
    /** A command without a reply after this long fails: admission follows on_store_error, a cache read misses. */
    command_timeout_ms: z.number().int().positive().default(2000)
  })
])
export type StoreConfig = z.infer<typeof storeSchema>

export const gatewayConfigSchema = z.strictObject({
  server: z
    .strictObject({
      port: z.coerce.number().int().min(0).max(65535).default(8080),
      host: z.string().default('0.0.0.0'),
      body_limit_bytes: z.number().int().positive().default(4 * 1024 * 1024),
      shutdown_grace_ms: z.number().int().nonnegative().default(7_000),
      request_timeout_ms: z.number().int().positive().default(600_000)
    })
    .prefault({}),
  store: storeSchema.prefault({ kind: 'memory' }),
  prices: z.string().default('prices.yaml'),
  providers: z.record(z.string(), providerSchema).default({}),
  models: z.record(z.string(), modelSchema).default({}),
  teams: z.record(z.string(), z.strictObject({ policy: z.string().optional() })).default({}),
  keys: z.array(keySchema).default([]),
  admin_key: z.string().optional(),
  metrics: z.strictObject({ enabled: z.boolean().default(true) }).prefault({}),
  /**
   * When tiktoken's tables load: `always` before the port opens; `auto` only if a team has a `tpm` limit, else on
   * first use; `never` on first use. Lazy saves ~70 MB of RSS but measured ~8 % more CPU per miss (README, "RSS").
   */
  tokenizer: z.strictObject({ preload: z.enum(['auto', 'always', 'never']).default('always') }).prefault({}),
  /**
   * Sessions (the `x-sluice-session` header): a session's running total and its windowless `scope: session`
   * budget counters are forgotten after `idle_ttl_s` without a request (each request pushes the expiry out), so
   * agents that mint a session id per task do not grow the store for good. 0 keeps them forever.
   */
  sessions: z.strictObject({ idle_ttl_s: z.number().int().nonnegative().default(86_400) }).prefault({}),
  /** Engine of the semantic cache (embedder, index); defaults apply when a team turns the layer on without it. */
  semantic_cache: semanticCacheConfigSchema.optional(),
  webhooks: z
    .strictObject({ budget_alert_url: z.url({ protocol: /^https?$/, error: 'an http(s) URL such as https://hooks.example/sluice' }).optional() })
    .prefault({}),
  /** OpenTelemetry traces (OTLP/HTTP JSON); absent = off. */
  telemetry: telemetrySchema.optional()
})
export type GatewayConfigInput = z.input<typeof gatewayConfigSchema>
export type GatewayConfigParsed = z.infer<typeof gatewayConfigSchema>
