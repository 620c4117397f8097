import type { RequestContext } from '../context.js'
import { GatewayError } from '../errors.js'
import type { RateLimitBucket, RateLimitResult } from '../store/types.js'
import { teamKeys } from './keys.js'
import type { RateLimit } from './schema.js'

const MINUTE = 60_000

export interface PlannedBucket {
  bucket: RateLimitBucket
  line: RateLimit
  kind: 'requests' | 'tokens'
}

/**
 * The token buckets a request draws from: one per rpm/tpm of every rate-limit line whose scope applies
 * (a `user` line needs a known end user). Buckets refill continuously: `rpm` per minute, `tpm` tokens per minute.
 *
 * @example
 * rateLimitBuckets(ctx, [{ scope: 'key', rpm: 600 }], 120) // [{ kind: 'requests', bucket: { capacity: 600, cost: 1, … } }]
 */
export function rateLimitBuckets(ctx: RequestContext, lines: RateLimit[], tokens: number): PlannedBucket[] {
  const keys = teamKeys(ctx.principal.team)
  const out: PlannedBucket[] = []
  for (const line of lines) {
    const id = line.scope === 'team' ? ctx.principal.team : line.scope === 'key' ? ctx.principal.keyId : ctx.principal.user
    if (id === undefined) continue
    if (line.rpm) out.push({ line, kind: 'requests', bucket: { key: keys.bucket(line.scope, id, 'rpm'), capacity: line.rpm, windowMs: MINUTE, cost: 1 } })
    if (line.tpm) out.push({ line, kind: 'tokens', bucket: { key: keys.bucket(line.scope, id, 'tpm'), capacity: line.tpm, windowMs: MINUTE, cost: tokens } })
  }
  return out
}

/**
 * OpenAI's rate-limit headers for the tightest bucket of each kind: `x-ratelimit-limit-requests`,
 * `x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests` (time until full, e.g. `1.2s`, `6m0s`), and `-tokens`.
 */
export function rateLimitHeaders(planned: PlannedBucket[], result: RateLimitResult): Record<string, string> {
  const headers: Record<string, string> = {}
  for (const kind of ['requests', 'tokens'] as const) {
    let best: { p: PlannedBucket; level: number } | undefined
    planned.forEach((p, i) => {
      if (p.kind !== kind) return
      const level = result.remaining[i]!
      if (!best || level / p.bucket.capacity < best.level / best.p.bucket.capacity) best = { p, level }
    })
    if (!best) continue
    const { capacity, windowMs } = best.p.bucket
    headers[`x-ratelimit-limit-${kind}`] = String(capacity)
    headers[`x-ratelimit-remaining-${kind}`] = String(Math.max(0, Math.floor(best.level)))
    headers[`x-ratelimit-reset-${kind}`] = formatDuration(((capacity - Math.min(capacity, best.level)) * windowMs) / capacity)
  }
  return headers
}

/** The 429 for a refused rate limit: retryable, with Retry-After; a request larger than the limit itself is not. */
export function rateLimitError(planned: PlannedBucket[], result: RateLimitResult): GatewayError {
  const p = planned[result.denied!]!
  const headers = rateLimitHeaders(planned, result)
  const unit = p.kind === 'requests' ? 'requests per min (RPM)' : 'tokens per min (TPM)'
  const what = `Rate limit reached for ${p.line.scope} on ${unit}: Limit ${p.bucket.capacity}`
  if (result.retryAfterMs === -1) {
    return new GatewayError(429, `${what}, Requested ${p.bucket.cost}. The request is larger than the limit; reduce the prompt or max_tokens.`, {
      code: 'rate_limit_exceeded',
      headers: { ...headers, 'x-should-retry': 'false' }
    })
  }
  const ms = Math.max(1, result.retryAfterMs ?? 1000)
  return new GatewayError(429, `${what}, Remaining ${Math.max(0, Math.floor(result.remaining[result.denied!]!))}. Please try again in ${formatDuration(ms)}.`, {
    code: 'rate_limit_exceeded',
    headers: { ...headers, 'retry-after': String(Math.ceil(ms / 1000)), 'retry-after-ms': String(ms) }
  })
}

/** Durations the way OpenAI writes them: `250ms`, `1.5s`, `6m0s`. */
export function formatDuration(ms: number): string {
  const rounded = Math.max(0, Math.ceil(ms))
  if (rounded < 1000) return `${rounded}ms`
  const s = rounded / 1000
  if (s < 60) return `${Number(s.toFixed(3))}s`
  const m = Math.floor(s / 60)
  return `${m}m${Math.round(s - m * 60)}s`
}
