import { z } from 'zod'

/** What a rule does when it fires. `redact` (input) and `mask` (output) replace the match; `flag` only records. */
export const guardActionSchema = z.enum(['block', 'redact', 'mask', 'flag'])
export type GuardAction = z.infer<typeof guardActionSchema>

export const PII_TYPES = ['email', 'phone', 'credit_card', 'iban', 'us_ssn', 'uk_nino', 'ipv4', 'ipv6'] as const
export const SECRET_TYPES = [
  'openai',
  'anthropic',
  'aws_access_key',
  'aws_secret_key',
  'google_api_key',
  'github',
  'slack',
  'stripe',
  'private_key',
  'jwt'
] as const
export type PiiType = (typeof PII_TYPES)[number]
export type SecretType = (typeof SECRET_TYPES)[number]

/** A family of detectors (PII or secrets) with one default action and per-type overrides. */
function detectorFamily<T extends readonly [string, ...string[]]>(types: T, action: GuardAction) {
  return z.strictObject({
    action: guardActionSchema.default(action),
    /** Which detectors run; all when absent. */
    types: z.array(z.enum(types)).optional(),
    /** Per-type action, e.g. `{ email: flag }`. */
    actions: z.partialRecord(z.enum(types), guardActionSchema).optional(),
    /** Input only: restore the redacted values in the answer (placeholders like `[EMAIL_1]`). */
    reversible: z.boolean().default(true)
  })
}

const regexString = z.string().refine(
  (s) => {
    try {
      new RegExp(s, 'u')
      return true
    } catch {
      return false
    }
  },
  { message: 'not a valid regular expression (JavaScript syntax, u flag)' }
)

/** A named deny rule: literal terms (whole words, case-insensitive by default) and/or regexes. */
export const denyRuleSchema = z.strictObject({
  name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, _ . - only'),
  terms: z.array(z.string().min(1)).default([]),
  regex: z.array(regexString).default([]),
  case_sensitive: z.boolean().default(false),
  action: guardActionSchema.default('block')
})
export type DenyRule = z.infer<typeof denyRuleSchema>

/** Values that no detector or deny rule ever fires on (e.g. the team's own support address). */
export const allowListSchema = z.strictObject({
  terms: z.array(z.string().min(1)).default([]),
  regex: z.array(regexString).default([])
})

/**
 * The optional second opinion on prompt injection: a chat model (a public name under `models:`) asked to label
 * each scanned text INJECTION or SAFE. Runs after budgets, rate limits and the cache lookup; costs nothing when absent.
 */
export const injectionClassifierSchema = z.strictObject({
  model: z.string().min(1),
  /**
   * Which texts it judges: `untrusted` tool results and messages marked untrusted; `always` those and user
   * messages; `inconclusive` only the texts the rules scan where a rule flagged or a weak cue appears.
   */
  when: z.enum(['untrusted', 'always', 'inconclusive']).default('untrusted'),
  /** The action applies when P(INJECTION) is at least this (the label's token probability, or 0/1 without logprobs). */
  threshold: z.number().min(0).max(1).default(0.5),
  action: z.enum(['block', 'flag']).default('block'),
  /** Characters sent per text: longer texts send their head and tail halves. */
  max_chars: z.number().int().min(100).max(100_000).default(4000),
  /** Classifier calls per request (newest texts first); texts past it count as not judged (see on_error). */
  max_calls: z.number().int().min(1).max(32).default(4),
  timeout_ms: z.number().int().min(100).max(60_000).default(5000),
  /** What a text the classifier could not judge (error, timeout, no label, past max_calls) does to the request. */
  on_error: z.enum(['allow', 'block']).default('allow'),
  /** Ask for token logprobs (openai and llama kinds); turn off for upstreams that reject them. */
  logprobs: z.boolean().default(true)
})
export type InjectionClassifierPolicy = z.infer<typeof injectionClassifierSchema>

export const injectionSchema = z.strictObject({
  action: guardActionSchema.default('block'),
  /** Rules used on system/user/assistant messages. */
  level: z.enum(['off', 'standard', 'strict']).default('standard'),
  /** Rules used on `tool` messages and on messages marked `untrusted: true`. */
  untrusted_level: z.enum(['off', 'standard', 'strict']).default('strict'),
  /** Roles whose content is always treated as untrusted. */
  untrusted_roles: z.array(z.enum(['system', 'developer', 'user', 'assistant', 'tool'])).default(['tool']),
  classifier: injectionClassifierSchema.optional()
})

const inputSchema = z.strictObject({
  max_input_tokens: z.number().int().positive().optional(),
  max_messages: z.number().int().positive().optional(),
  max_tools: z.number().int().nonnegative().optional(),
  max_images: z.number().int().nonnegative().optional(),
  pii: detectorFamily(PII_TYPES, 'redact').optional(),
  secrets: detectorFamily(SECRET_TYPES, 'redact').optional(),
  injection: injectionSchema.optional(),
  deny: z.array(denyRuleSchema).default([])
})

const reasoningSchema = z.strictObject({
  max_requests: z.number().int().positive().optional(),
  /** Requests that carry tool results back (a new round of the agent loop). */
  max_tool_rounds: z.number().int().positive().optional(),
  max_cost_usd: z.number().positive().optional(),
  tools: z
    .strictObject({
      allow: z.array(z.string()),
      /** What to do with a request that offers tools outside the list. Responses calling them are always blocked. */
      on_request: z.enum(['strip', 'block']).default('strip')
    })
    .optional(),
  loop: z
    .strictObject({
      /** Block when the same tool call (name + arguments) comes back this many times in a row. */
      max_repeats: z.number().int().min(2).default(3),
      /** Block when the same assistant message comes back this many times in a row. */
      max_repeated_messages: z.number().int().min(2).default(3)
    })
    .optional(),
  /** How long session state lives after its last update. */
  session_ttl_s: z.number().int().positive().default(86_400)
})

const outputSchema = z.strictObject({
  pii: detectorFamily(PII_TYPES, 'mask').optional(),
  secrets: detectorFamily(SECRET_TYPES, 'mask').optional(),
  /** Validate answers against `response_format.json_schema`. */
  json_schema: z.enum(['off', 'block', 'flag']).default('block'),
  deny: z.array(denyRuleSchema).default([])
})

/** The `guardrails:` section of a team policy. */
export const guardrailsPolicySchema = z.strictObject({
  input: inputSchema.optional(),
  reasoning: reasoningSchema.optional(),
  output: outputSchema.optional(),
  allow: allowListSchema.optional()
})
export type GuardrailsPolicy = z.infer<typeof guardrailsPolicySchema>
export type InputPolicy = z.infer<typeof inputSchema>
export type ReasoningPolicy = z.infer<typeof reasoningSchema>
export type OutputPolicy = z.infer<typeof outputSchema>
export type InjectionPolicy = z.infer<typeof injectionSchema>
