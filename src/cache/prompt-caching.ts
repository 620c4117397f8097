import type { Price } from '../config/schema.js'
import type { Usage } from '../types.js'
import type { ProviderCachePolicy } from './schema.js'

/** Anthropic allows at most this many `cache_control` breakpoints per request. */
export const MAX_BREAKPOINTS = 4

export interface CacheControl {
  type: 'ephemeral'
  ttl?: '5m' | '1h'
}

export interface AnthropicBlock {
  type: string
  cache_control?: CacheControl | null
  [k: string]: unknown
}

export interface AnthropicMessagesBody {
  system?: string | AnthropicBlock[]
  tools?: { cache_control?: CacheControl | null; [k: string]: unknown }[]
  messages: { role: 'user' | 'assistant'; content: string | AnthropicBlock[] }[]
  [k: string]: unknown
}

interface Slot {
  /** Position in Anthropic's prefix order: tools, then system, then messages. */
  order: number
  /** Characters of the prefix up to and including this slot (a token estimate is chars / 4). */
  prefixChars: number
  target: { cache_control?: CacheControl | null }
}

/** Blocks that cannot carry cache_control. */
const UNMARKABLE = new Set(['thinking', 'redacted_thinking'])

/**
 * Inserts Anthropic prompt-caching breakpoints into a Messages request body and returns a new body (the
 * input is not changed). Breakpoints go, in this priority, on: the final message (caches the whole prompt
 * for the next turn), the system prompt, the previous turn's final message (reads what the last request
 * wrote, even past Anthropic's 20-block look-back), and the tool definitions; never more than 4 in all,
 * counting the client's own, which are kept. A breakpoint whose prefix is under `min_prefix_tokens`
 * (estimated as characters / 4) is skipped: Anthropic would not cache it.
 *
 * Byte stability: when any breakpoint is placed, string contents are rewritten as one text block whether or
 * not that message is marked, so a message serialises the same in every later turn and the prefix the
 * provider hashed stays the same apart from where the markers sit. When none is placed the input is
 * returned as it is (nothing was written to the provider's cache, so there is no prefix to keep stable).
 *
 * @example
 * const body = placeCacheBreakpoints({ system: longPrompt, messages }, policy.cache.provider)
 * // body.system = [{ type: 'text', text: longPrompt, cache_control: { type: 'ephemeral' } }]
 */
export function placeCacheBreakpoints<T extends AnthropicMessagesBody>(input: T, policy: ProviderCachePolicy): T {
  if (!policy.enabled) return input
  const body = structuredClone(input)
  if (typeof body.system === 'string' && body.system) body.system = [{ type: 'text', text: body.system }]
  for (const m of body.messages) if (typeof m.content === 'string') m.content = [{ type: 'text', text: m.content }]

  // Walk the prefix in order, noting where breakpoints can go and where the client already put some.
  let order = 0
  let chars = 0
  let existing = 0
  let lastLongTtl = -1
  const note = (target: { cache_control?: CacheControl | null }, size: number): Slot => {
    chars += size
    const slot = { order: order++, prefixChars: chars, target }
    if (target.cache_control) {
      existing++
      if (target.cache_control.ttl === '1h') lastLongTtl = slot.order
    }
    return slot
  }
  const toolSlots = (body.tools ?? []).map((t) => note(t, JSON.stringify(t).length))
  const systemSlots = (Array.isArray(body.system) ? body.system : []).map((b) => note(b as AnthropicBlock, JSON.stringify(b).length))
  const messageSlots = body.messages.map((m) => {
    let markable: Slot | undefined
    for (const b of m.content as AnthropicBlock[]) {
      const slot = note(b, JSON.stringify(b).length)
      if (!UNMARKABLE.has(b.type) && !(b.type === 'text' && !b.text)) markable = slot
    }
    return markable
  })

  const lastUser = (before: number): number => {
    for (let i = before - 1; i >= 0; i--) if (body.messages[i]!.role === 'user') return i
    return -1
  }
  const final = body.messages.length - 1
  const candidates: (Slot | undefined)[] = []
  if (policy.conversation) candidates.push(messageSlots[final])
  if (policy.system) candidates.push(systemSlots.at(-1))
  if (policy.conversation) candidates.push(messageSlots[lastUser(final)])
  if (policy.tools) candidates.push(toolSlots.at(-1))

  let budget = MAX_BREAKPOINTS - existing
  const minChars = policy.min_prefix_tokens * 4
  let placed = 0
  for (const slot of candidates) {
    if (budget <= 0) break
    if (!slot || slot.target.cache_control || slot.prefixChars < minChars) continue
    // Anthropic requires longer-lived breakpoints before shorter ones: follow a later client 1h marker.
    slot.target.cache_control = slot.order < lastLongTtl ? { type: 'ephemeral', ttl: '1h' } : { type: 'ephemeral' }
    budget--
    placed++
  }
  // Nothing to cache (short prompt, or the client used every breakpoint): send the client's bytes as they were.
  // Prefixes only grow within a conversation, so once a turn is marked every later turn is rewritten too.
  return placed > 0 ? body : input
}

export interface ProviderCacheSavings {
  /** Input tokens read from the provider's cache. */
  cachedTokens: number
  /** Input tokens written to the provider's cache (Anthropic). */
  writeTokens: number
  /** What the cached tokens would have cost at the full input rate, minus what they cost. */
  readSavedUsd: number
  /** The premium paid for cache writes over the plain input rate. */
  writeExtraUsd: number
  /** readSavedUsd - writeExtraUsd (negative when a written prefix was never read back). */
  netSavedUsd: number
}

/**
 * What provider prompt caching saved on one call, from canonical usage (`prompt_tokens_details.cached_tokens`
 * for reads, `cache_creation_input_tokens` for Anthropic writes) and the model's price per million tokens.
 * A price without `cached_input` saves nothing (the rate is unknown); one without `cache_write` adds no premium.
 *
 * @example
 * providerCacheSavings({ prompt_tokens: 2000, completion_tokens: 10, total_tokens: 2010,
 *   prompt_tokens_details: { cached_tokens: 1500 } }, { input: 3, output: 15, cached_input: 0.3 })
 * // { cachedTokens: 1500, writeTokens: 0, readSavedUsd: 0.00405, writeExtraUsd: 0, netSavedUsd: 0.00405 }
 */
export function providerCacheSavings(usage: Usage | undefined, price: Price | undefined): ProviderCacheSavings {
  const cachedTokens = usage?.prompt_tokens_details?.cached_tokens ?? 0
  const writeTokens = usage?.cache_creation_input_tokens ?? 0
  if (!price) return { cachedTokens, writeTokens, readSavedUsd: 0, writeExtraUsd: 0, netSavedUsd: 0 }
  const readSavedUsd = price.cached_input === undefined ? 0 : (cachedTokens * (price.input - price.cached_input)) / 1e6
  const writeExtraUsd = price.cache_write === undefined ? 0 : (writeTokens * (price.cache_write - price.input)) / 1e6
  return { cachedTokens, writeTokens, readSavedUsd, writeExtraUsd, netSavedUsd: readSavedUsd - writeExtraUsd }
}
