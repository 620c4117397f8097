import type { AnthropicRequest, CacheControl, ContentBlock } from './wire.js'

/** Anthropic accepts at most this many cache_control breakpoints per request. */
export const MAX_CACHE_BREAKPOINTS = 4

/** Where a breakpoint goes: after the tool definitions, after the system prompt, or after the last message. */
export type BreakpointTarget = 'tools' | 'system' | 'last_message'

/**
 * Count the cache_control breakpoints a request already carries (tools, system blocks, message blocks).
 *
 * @example
 * countCacheBreakpoints({ model, max_tokens: 10, messages: [], system: [{ type: 'text', text: 'x', cache_control: { type: 'ephemeral' } }] }) // → 1
 */
export function countCacheBreakpoints(body: AnthropicRequest): number {
  let n = 0
  for (const t of body.tools ?? []) if (t.cache_control) n++
  if (Array.isArray(body.system)) for (const b of body.system) if (b.cache_control) n++
  for (const m of body.messages) if (Array.isArray(m.content)) for (const b of m.content) if (b.cache_control) n++
  return n
}

/**
 * Return a copy of `body` with a cache_control breakpoint at the end of `target`, so Anthropic caches the
 * prefix up to it. Does nothing when the target is empty, already marked, or the request already has
 * {@link MAX_CACHE_BREAKPOINTS} (Anthropic rejects a fifth). The input is not mutated.
 *
 * @example
 * const body = addCacheBreakpoint(addCacheBreakpoint(req, 'system'), 'last_message', { type: 'ephemeral', ttl: '1h' })
 */
export function addCacheBreakpoint(body: AnthropicRequest, target: BreakpointTarget, control: CacheControl = { type: 'ephemeral' }): AnthropicRequest {
  if (countCacheBreakpoints(body) >= MAX_CACHE_BREAKPOINTS) return body
  if (target === 'tools') {
    const tools = body.tools
    const last = tools?.[tools.length - 1]
    if (!tools || !last || last.cache_control) return body
    return { ...body, tools: [...tools.slice(0, -1), { ...last, cache_control: control }] }
  }
  if (target === 'system') {
    if (body.system === undefined || body.system === '') return body
    const blocks = typeof body.system === 'string' ? [{ type: 'text' as const, text: body.system }] : body.system
    const marked = markLast(blocks, control)
    return marked ? { ...body, system: marked } : body
  }
  const messages = body.messages
  const last = messages[messages.length - 1]
  if (!last) return body
  const blocks: ContentBlock[] = typeof last.content === 'string' ? [{ type: 'text', text: last.content }] : last.content
  const marked = markLast(blocks, control)
  return marked ? { ...body, messages: [...messages.slice(0, -1), { ...last, content: marked }] } : body
}

function markLast<B extends ContentBlock>(blocks: B[], control: CacheControl): B[] | undefined {
  const last = blocks[blocks.length - 1]
  // thinking blocks cannot carry cache_control
  if (!last || last.cache_control || last.type === 'thinking' || last.type === 'redacted_thinking') return undefined
  return [...blocks.slice(0, -1), { ...last, cache_control: control }]
}
