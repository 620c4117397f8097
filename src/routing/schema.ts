import { z } from 'zod'

/** Failure kinds a fallback (or load balancer) moves on for. */
export const failureKinds = ['error', 'timeout', 'rate_limit', 'context_length'] as const
export type FailureKind = (typeof failureKinds)[number]

const timeoutsOverride = z.strictObject({
  first_byte_ms: z.number().int().positive().optional(),
  total_ms: z.number().int().positive().optional()
})

export const retryPolicySchema = z.strictObject({
  /** Retries after the first try (0 disables). */
  retries: z.number().int().min(0).max(10).default(2),
  base_ms: z.number().int().nonnegative().default(200),
  max_ms: z.number().int().nonnegative().default(5_000),
  /** An upstream Retry-After longer than this is not waited for: the route moves on (fallback) instead. */
  max_retry_after_ms: z.number().int().nonnegative().default(10_000)
})
export type RetryPolicy = z.infer<typeof retryPolicySchema>

export const breakerPolicySchema = z.strictObject({
  /** Consecutive failures (5xx, 429, timeouts, connection errors) that open the circuit. */
  failures: z.number().int().positive().default(5),
  /** How long an open circuit rejects calls before one half-open probe is let through. */
  cooldown_ms: z.number().int().positive().default(30_000)
})
export type BreakerPolicy = z.infer<typeof breakerPolicySchema>

/**
 * Bounds for every cascade tier but the last, when the tier sets none: a cheap tier is generated whole
 * before anything reaches the client, so it must not run unbounded.
 */
export const cascadeDefaultsSchema = z.strictObject({
  /** Output cap of a cheap tier (never above the client's own cap). */
  max_tokens: z.number().int().positive().default(1024),
  /** Wall-clock bound of a cheap tier; a tier that runs past it escalates as `error`. */
  timeout_ms: z.number().int().positive().default(30_000)
})
export type CascadeDefaults = z.infer<typeof cascadeDefaultsSchema>

/** Per-target settings (keys are `models:` names). */
const targetSettingsSchema = z.strictObject({
  timeouts: timeoutsOverride.optional(),
  retry: retryPolicySchema.partial().optional()
})

const regexString = z.string().refine(
  (s) => {
    try {
      new RegExp(s)
      return true
    } catch {
      return false
    }
  },
  { message: 'is not a valid regular expression' }
)

const oneOrMany = z.union([z.string(), z.array(z.string())])

export const conditionSchema = z.strictObject({
  team: oneOrMany.optional(),
  user: oneOrMany.optional(),
  /** Matches when the request carries any of these tags (x-sluice-tags). */
  tags: z.array(z.string()).optional(),
  min_prompt_tokens: z.number().int().nonnegative().optional(),
  max_prompt_tokens: z.number().int().nonnegative().optional(),
  has_tools: z.boolean().optional(),
  has_images: z.boolean().optional(),
  json_mode: z.boolean().optional(),
  /** Regular expression tested against the last user message (case-insensitive). */
  message_regex: regexString.optional()
})
export type Condition = z.infer<typeof conditionSchema>

export const scoreRouterSchema = z.strictObject({
  kind: z.literal('score'),
  /** Name of a registered scorer; `builtin` is the feature scorer in src/routing/scorer.ts. */
  scorer: z.string().default('builtin'),
  /**
   * Prompts scoring at or above the threshold skip straight to the last tier. A list of ascending
   * thresholds picks a tier: the number of thresholds the score reaches is the starting tier.
   */
  threshold: z.union([z.number(), z.array(z.number()).min(1)])
})
export type ScoreRouter = z.infer<typeof scoreRouterSchema>

export const checksSchema = z.strictObject({
  /** Accept only when the mean token logprob is at least this (the tier is asked for logprobs). */
  min_mean_logprob: z.number().max(0).optional(),
  /** Accept only when every token's logprob is at least this. */
  min_token_logprob: z.number().max(0).optional(),
  /** Valid JSON / JSON schema when the request's response_format asks for it. */
  json: z.boolean().default(true),
  /** Tool-call arguments must be valid JSON matching the tool's parameters schema. */
  tool_args: z.boolean().default(true),
  /** Reject refusals, "I don't know" answers and empty answers. */
  refusal: z.boolean().default(true),
  /** Ask another model to grade the answer 1-10; accept at `min_score` or above. */
  judge: z.strictObject({ target: z.string(), min_score: z.number().min(1).max(10).default(7) }).optional()
})
export type Checks = z.infer<typeof checksSchema>

/** A routing strategy. Strategies nest: any `route` is itself a strategy. */
export type RouteNode =
  | string
  | { single: string }
  | { fallback: RouteNode[]; on?: FailureKind[] }
  | { loadbalance: { route: RouteNode; weight?: number }[]; by?: 'weight' | 'least_outstanding' | 'least_latency' }
  | { conditional: { when: Condition; route: RouteNode }[]; default?: RouteNode }
  | { cascade: CascadeTier[]; router?: ScoreRouter }

export interface CascadeTier {
  route: RouteNode
  /** Checks the tier's answer must pass; the last tier's answer is always accepted. */
  checks?: Checks
  /** Output cap for this tier (bounds how long a cheap tier runs before it is judged); default `cascade_defaults.max_tokens` except on the last tier. */
  max_tokens?: number
  /** Wall-clock bound for this tier; default `cascade_defaults.timeout_ms` except on the last tier. */
  timeout_ms?: number
}

export const routeNodeSchema: z.ZodType<RouteNode> = z.lazy(() =>
  z.union([
    z.string(),
    z.strictObject({ single: z.string() }),
    z.strictObject({ fallback: z.array(routeNodeSchema).min(1), on: z.array(z.enum(failureKinds)).optional() }),
    z.strictObject({
      loadbalance: z.array(z.strictObject({ route: routeNodeSchema, weight: z.number().positive().optional() })).min(1),
      by: z.enum(['weight', 'least_outstanding', 'least_latency']).optional()
    }),
    z.strictObject({
      conditional: z.array(z.strictObject({ when: conditionSchema, route: routeNodeSchema })).min(1),
      default: routeNodeSchema.optional()
    }),
    z.strictObject({
      cascade: z
        .array(
          z.strictObject({
            route: routeNodeSchema,
            checks: checksSchema.optional(),
            max_tokens: z.number().int().positive().optional(),
            timeout_ms: z.number().int().positive().optional()
          })
        )
        .min(2),
      router: scoreRouterSchema.optional()
    })
  ])
) as z.ZodType<RouteNode>

/**
 * The `routing:` section of a team policy.
 *
 * @example
 * routing:
 *   routes:
 *     smart:
 *       cascade:
 *         - { route: local-qwen, checks: { min_mean_logprob: -0.6 } }
 *         - { route: { fallback: [gpt-4o, claude-sonnet] } }
 *   retry: { retries: 2 }
 *   breaker: { failures: 5, cooldown_ms: 30000 }
 *   cascade_defaults: { max_tokens: 1024, timeout_ms: 30000 }
 */
export const routingPolicySchema = z.strictObject({
  /** Public model name → strategy. These names appear in /v1/models for the team. */
  routes: z.record(z.string(), routeNodeSchema).default({}),
  retry: retryPolicySchema.prefault({}),
  /** `false` turns the circuit breakers off for this team's requests. */
  breaker: z.union([z.literal(false), breakerPolicySchema]).prefault({}),
  /** Bounds of every cascade tier but the last that sets none of its own. */
  cascade_defaults: cascadeDefaultsSchema.prefault({}),
  targets: z.record(z.string(), targetSettingsSchema).default({})
})
export type RoutingPolicy = z.infer<typeof routingPolicySchema>
