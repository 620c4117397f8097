import type { Price } from '../config/schema.js'
import type { Usage } from '../types.js'

/** Token counts by billing kind. `input` excludes cached reads and cache writes. */
export interface TokenCounts {
  input: number
  output: number
  cached_input: number
  cache_write: number
}

/**
 * Split canonical usage into billing kinds. Canonical `prompt_tokens` includes cached reads and cache writes
 * (OpenAI's semantics), so they are subtracted once: cached tokens are never billed twice.
 */
export function tokenCounts(usage: Usage | undefined): TokenCounts {
  if (!usage) return { input: 0, output: 0, cached_input: 0, cache_write: 0 }
  const cached = usage.prompt_tokens_details?.cached_tokens ?? 0
  const write = usage.cache_creation_input_tokens ?? 0
  return {
    input: Math.max(0, (usage.prompt_tokens ?? 0) - cached - write),
    output: usage.completion_tokens ?? 0,
    cached_input: cached,
    cache_write: write
  }
}

/**
 * Cost in USD of a set of token counts at a price (USD per million tokens). Cached input defaults to the
 * input price, cache writes too, when the price table has no separate rate.
 *
 * @example
 * costOf({ input: 1000, output: 500, cached_input: 0, cache_write: 0 }, { input: 0.15, output: 0.6 }) // 0.00045
 */
export function costOf(t: TokenCounts, price: Price): number {
  const micro = t.input * price.input + t.output * price.output + t.cached_input * (price.cached_input ?? price.input) + t.cache_write * (price.cache_write ?? price.input)
  return micro / 1_000_000
}
