import { z } from 'zod'

/** One budget line of a team policy. Refined by the budget module. */
export const budgetSchema = z.strictObject({
  scope: z.enum(['team', 'key', 'user', 'session', 'tag', 'agent']),
  tag: z.string().optional(),
  limit_usd: z.number().positive(),
  window: z.enum(['day', 'week', 'month', 'total']).default('total'),
  on_exceed: z.union([z.literal('reject'), z.strictObject({ downgrade_to: z.string() })]).default('reject'),
  alert_at: z.array(z.number().positive().max(1)).optional(),
  shadow: z.boolean().default(false)
})
export type Budget = z.infer<typeof budgetSchema>

export const rateLimitSchema = z.strictObject({
  scope: z.enum(['key', 'team', 'user']),
  rpm: z.number().int().positive().optional(),
  tpm: z.number().int().positive().optional()
})
export type RateLimit = z.infer<typeof rateLimitSchema>
