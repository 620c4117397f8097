import { z } from 'zod'

/**
 * One budget line of a team policy.
 *
 * @example
 * { scope: 'key', limit_usd: 50, window: 'day', on_exceed: { downgrade_to: 'gpt-4o-mini' }, alert_at: [0.5, 0.8] }
 */
export const budgetSchema = z
  .strictObject({
    /** Who the cap applies to: the whole team, each key, each end user, each session, a tag, each agent. */
    scope: z.enum(['team', 'key', 'user', 'session', 'tag', 'agent']),
    /** For scope tag: the tag this budget caps (requests carry tags in `x-sluice-tags`); without it, every tag separately. */
    tag: z.string().min(1).optional(),
    limit_usd: z.number().positive(),
    /** Calendar windows in UTC (weeks start on Monday), or `total` for a lifetime cap. */
    window: z.enum(['day', 'week', 'month', 'total']).default('total'),
    on_exceed: z.union([z.literal('reject'), z.strictObject({ downgrade_to: z.string().min(1) })]).default('reject'),
    /** Fractions of the limit at which the budget alert webhook fires, once per threshold per window. */
    alert_at: z.array(z.number().positive().max(1)).optional(),
    /** Count spend, never refuse (try a limit before enforcing it). */
    shadow: z.boolean().default(false)
  })
  .refine((b) => b.tag === undefined || b.scope === 'tag', { message: '`tag` is only valid with scope: tag', path: ['tag'] })
export type Budget = z.infer<typeof budgetSchema>

/**
 * One rate limit line: requests and/or tokens per minute, per key, team or end user (token buckets in the store).
 *
 * @example
 * { scope: 'key', rpm: 600, tpm: 200000 }
 */
export const rateLimitSchema = z
  .strictObject({
    scope: z.enum(['key', 'team', 'user']),
    rpm: z.number().int().positive().optional(),
    tpm: z.number().int().positive().optional()
  })
  .refine((r) => r.rpm !== undefined || r.tpm !== undefined, { message: 'set rpm, tpm or both' })
export type RateLimit = z.infer<typeof rateLimitSchema>
