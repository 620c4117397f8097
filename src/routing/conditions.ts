import type { RequestContext } from '../context.js'
import { countPromptTokens } from '../tokens.js'
import { lastUserText } from './checks.js'
import type { Condition } from './schema.js'

const regexCache = new Map<string, RegExp>()

/**
 * Whether a request matches a conditional rule: every field set in the rule must hold (AND); list fields match
 * any of their values (OR). Prompt tokens are counted once per request and kept in `ctx.state`.
 *
 * @example
 * matches(ctx, { has_tools: true, min_prompt_tokens: 2000 })
 */
export function matches(ctx: RequestContext, when: Condition): boolean {
  const req = ctx.request
  if (when.team !== undefined && !oneOf(when.team, ctx.principal.team)) return false
  if (when.user !== undefined && !oneOf(when.user, ctx.principal.user)) return false
  if (when.tags !== undefined && !when.tags.some((t) => ctx.tags.includes(t))) return false
  if (when.has_tools !== undefined && when.has_tools !== Boolean(req.tools?.length)) return false
  if (when.has_images !== undefined && when.has_images !== hasImages(ctx)) return false
  if (when.json_mode !== undefined) {
    const json = req.response_format?.type === 'json_object' || req.response_format?.type === 'json_schema'
    if (json !== when.json_mode) return false
  }
  if (when.min_prompt_tokens !== undefined || when.max_prompt_tokens !== undefined) {
    const n = promptTokens(ctx)
    if (when.min_prompt_tokens !== undefined && n < when.min_prompt_tokens) return false
    if (when.max_prompt_tokens !== undefined && n > when.max_prompt_tokens) return false
  }
  if (when.message_regex !== undefined) {
    let re = regexCache.get(when.message_regex)
    if (!re) regexCache.set(when.message_regex, (re = new RegExp(when.message_regex, 'i')))
    if (!re.test(lastUserText(req))) return false
  }
  return true
}

/** The prompt's token count (tiktoken), computed once per request. */
export function promptTokens(ctx: RequestContext): number {
  const cached = ctx.state.promptTokens
  if (typeof cached === 'number') return cached
  const n = countPromptTokens(ctx.request)
  ctx.state.promptTokens = n
  return n
}

function oneOf(rule: string | string[], value: string | undefined): boolean {
  if (value === undefined) return false
  return Array.isArray(rule) ? rule.includes(value) : rule === value
}

function hasImages(ctx: RequestContext): boolean {
  return ctx.request.messages.some((m) => Array.isArray(m.content) && m.content.some((p) => p.type === 'image_url' || p.type === 'input_image' || p.type === 'image'))
}
