import { GatewayError } from '../../errors.js'
import type { ChatMessage, ChatRequest, ContentPart, ToolDefinition } from '../../types.js'
import { parseToolInput, toToolUseId } from './response.js'
import type { AnthropicRequest, AnthropicTool, AnthropicToolChoice, CacheControl, ContentBlock, ImageBlock, MessageParam, TextBlock, ToolResultBlock, ToolUseBlock } from './wire.js'

export interface ToAnthropicOptions {
  /** Anthropic requires max_tokens; used when the request sets neither max_tokens nor max_completion_tokens. */
  defaultMaxTokens?: number
}

/** Block types that already are Anthropic content: a caller translating from /v1/messages may carry them through. */
const NATIVE_BLOCKS = new Set(['image', 'document', 'thinking', 'redacted_thinking', 'tool_use', 'tool_result', 'search_result'])

/** Request fields with no OpenAI equivalent that an Anthropic target understands and that pass through as is. */
const NATIVE_FIELDS = ['top_k', 'thinking', 'service_tier'] as const

/**
 * Translate a canonical (OpenAI chat) request into a Messages API request.
 * System and developer messages become `system`; tool results become `tool_result` blocks in a user turn;
 * consecutive messages of one role are merged because Anthropic wants the roles to alternate.
 *
 * @example
 * toAnthropicRequest({ model: 'claude-sonnet-4-5', messages: [{ role: 'system', content: 'Be brief' }, { role: 'user', content: 'Hi' }] })
 * // → { model: 'claude-sonnet-4-5', max_tokens: 4096, system: 'Be brief', messages: [{ role: 'user', content: 'Hi' }] }
 */
export function toAnthropicRequest(req: ChatRequest, opts: ToAnthropicOptions = {}): AnthropicRequest {
  if (req.n != null && req.n > 1) {
    throw new GatewayError(400, 'n > 1 is not supported by Anthropic models; send separate requests', { param: 'n', code: 'unsupported_parameter' })
  }
  const system: TextBlock[] = []
  const turns: MessageParam[] = []
  const push = (role: 'user' | 'assistant', blocks: ContentBlock[], plain?: string) => {
    const last = turns[turns.length - 1]
    if (last && last.role === role) {
      last.content = [...asBlocks(last.content), ...blocks]
    } else if (plain !== undefined) {
      turns.push({ role, content: plain })
    } else if (blocks.length > 0) {
      turns.push({ role, content: blocks })
    }
  }

  req.messages.forEach((msg, i) => {
    switch (msg.role) {
      case 'system':
      case 'developer':
        system.push(...withMessageCache(msg, contentBlocks(msg.content, i)).filter(isText))
        return
      case 'user': {
        const blocks = withMessageCache(msg, contentBlocks(msg.content, i))
        push('user', blocks, typeof msg.content === 'string' && !msg.cache_control ? msg.content : undefined)
        return
      }
      case 'assistant': {
        const blocks = contentBlocks(msg.content, i).filter((b) => !(b.type === 'text' && (b as TextBlock).text === ''))
        for (const call of msg.tool_calls ?? []) {
          blocks.push({ type: 'tool_use', id: toToolUseId(call.id), name: call.function.name, input: parseToolInput(call.function.arguments) })
        }
        const cached = withMessageCache(msg, blocks)
        const plainText = typeof msg.content === 'string' && !msg.tool_calls?.length && !msg.cache_control && msg.content !== '' ? msg.content : undefined
        push('assistant', cached, plainText)
        return
      }
      case 'tool': {
        if (!msg.tool_call_id) throw new GatewayError(400, `messages[${i}]: a tool message needs tool_call_id`, { param: `messages[${i}].tool_call_id` })
        const content = typeof msg.content === 'string' || msg.content == null ? (msg.content ?? '') : (contentBlocks(msg.content, i) as (TextBlock | ImageBlock)[])
        push('user', withMessageCache(msg, [{ type: 'tool_result', tool_use_id: toToolUseId(msg.tool_call_id), content }]))
        return
      }
      default:
        throw new GatewayError(400, `messages[${i}]: role "${String(msg.role)}" is not supported`, { param: `messages[${i}].role` })
    }
  })

  // Anthropic rejects a final assistant turn (a prefill) that ends in whitespace.
  const final = turns[turns.length - 1]
  if (final?.role === 'assistant') trimTrailingWhitespace(final)

  const out: AnthropicRequest = {
    model: req.model,
    max_tokens: req.max_completion_tokens ?? req.max_tokens ?? opts.defaultMaxTokens ?? 4096,
    messages: turns
  }
  if (system.length > 0) out.system = system.length === 1 && !system[0]!.cache_control ? system[0]!.text : system
  if (req.tools?.length) {
    out.tools = req.tools.map(toAnthropicTool)
    const choice = toAnthropicToolChoice(req.tool_choice, req.parallel_tool_calls)
    if (choice) out.tool_choice = choice
  }
  if (req.stop != null) {
    const stops = (Array.isArray(req.stop) ? req.stop : [req.stop]).filter((s) => s !== '')
    if (stops.length > 0) out.stop_sequences = stops
  }
  // OpenAI allows temperature up to 2, Anthropic up to 1: clamp rather than fail a request that is valid for the client.
  if (req.temperature != null) out.temperature = Math.min(1, Math.max(0, req.temperature))
  if (req.top_p != null) out.top_p = req.top_p
  if (req.user) out.metadata = { user_id: req.user }
  for (const field of NATIVE_FIELDS) if (req[field] !== undefined) (out as Record<string, unknown>)[field] = req[field]
  return out
}

/** OpenAI function tool → Anthropic tool; `cache_control` on the tool definition is kept. */
export function toAnthropicTool(tool: ToolDefinition): AnthropicTool {
  const out: AnthropicTool = {
    name: tool.function.name,
    input_schema: tool.function.parameters ?? { type: 'object', properties: {} }
  }
  if (tool.function.description) out.description = tool.function.description
  if (tool.cache_control) out.cache_control = tool.cache_control as CacheControl
  return out
}

/**
 * OpenAI tool_choice (+ parallel_tool_calls) → Anthropic tool_choice.
 *
 * @example
 * toAnthropicToolChoice('required', false) // → { type: 'any', disable_parallel_tool_use: true }
 */
export function toAnthropicToolChoice(choice: unknown, parallel?: boolean): AnthropicToolChoice | undefined {
  let out: AnthropicToolChoice | undefined
  if (choice === 'none') return { type: 'none' }
  if (choice === 'required') out = { type: 'any' }
  else if (choice === 'auto') out = { type: 'auto' }
  else if (choice && typeof choice === 'object') {
    const c = choice as { type?: string; function?: { name?: string }; name?: string }
    const name = c.function?.name ?? c.name
    if (!name) throw new GatewayError(400, 'tool_choice must name a function', { param: 'tool_choice' })
    out = { type: 'tool', name }
  }
  if (parallel === false) out = { ...(out ?? { type: 'auto' }), disable_parallel_tool_use: true } as AnthropicToolChoice
  return out
}

function contentBlocks(content: ChatMessage['content'], i: number): ContentBlock[] {
  if (content == null) return []
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }]
  return content.map((part, j) => toBlock(part, `messages[${i}].content[${j}]`))
}

function toBlock(part: ContentPart, path: string): ContentBlock {
  const cache = part.cache_control as CacheControl | undefined
  const withCache = <B extends ContentBlock>(b: B): B => (cache ? { ...b, cache_control: cache } : b)
  if (part.type === 'text') return withCache({ type: 'text', text: String(part.text ?? '') })
  if (part.type === 'image_url') {
    const url = (part.image_url as { url?: string } | undefined)?.url
    if (!url) throw new GatewayError(400, `${path}: image_url.url is required`, { param: path })
    return withCache({ type: 'image', source: imageSource(url, path) })
  }
  if (part.type === 'file') {
    const data = (part.file as { file_data?: string } | undefined)?.file_data
    const parsed = data ? parseDataUrl(data) : undefined
    if (!parsed || parsed.mediaType !== 'application/pdf') {
      throw new GatewayError(400, `${path}: only PDF files sent as a data: URL in file.file_data are supported by Anthropic models`, { param: path })
    }
    return withCache({ type: 'document', source: { type: 'base64', media_type: parsed.mediaType, data: parsed.data } })
  }
  if (NATIVE_BLOCKS.has(part.type)) return part as ContentBlock
  throw new GatewayError(400, `${path}: content type "${part.type}" is not supported by Anthropic models`, { param: path })
}

function imageSource(url: string, path: string): ImageBlock['source'] {
  if (url.startsWith('data:')) {
    const parsed = parseDataUrl(url)
    if (!parsed) throw new GatewayError(400, `${path}: image data URL must be base64 encoded (data:image/png;base64,...)`, { param: path })
    return { type: 'base64', media_type: parsed.mediaType, data: parsed.data }
  }
  return { type: 'url', url }
}

function parseDataUrl(url: string): { mediaType: string; data: string } | undefined {
  const m = /^data:([^;,]+)(?:;[^,]*)?;base64,(.*)$/s.exec(url)
  return m ? { mediaType: m[1]!, data: m[2]! } : undefined
}

/** Message-level cache_control (the OpenRouter/LiteLLM convention) marks the message's last block. */
function withMessageCache(msg: ChatMessage, blocks: ContentBlock[]): ContentBlock[] {
  const cache = msg.cache_control as CacheControl | undefined
  if (!cache || blocks.length === 0) return blocks
  const copy = blocks.slice()
  copy[copy.length - 1] = { ...copy[copy.length - 1]!, cache_control: cache }
  return copy
}

function asBlocks(content: MessageParam['content']): ContentBlock[] {
  return typeof content === 'string' ? (content === '' ? [] : [{ type: 'text', text: content }]) : content
}

function isText(b: ContentBlock): b is TextBlock {
  return b.type === 'text'
}

function trimTrailingWhitespace(turn: MessageParam): void {
  if (typeof turn.content === 'string') {
    turn.content = turn.content.trimEnd()
    return
  }
  const last = turn.content[turn.content.length - 1]
  if (last?.type === 'text') (last as TextBlock).text = (last as TextBlock).text.trimEnd()
}

/**
 * A Messages API request → a canonical request, for the inbound /v1/messages surface when the target is not
 * Anthropic (Anthropic targets should get the original bytes). Thinking blocks are dropped: no other provider
 * can verify their signatures. Server tools (web search, code execution) have no equivalent and are rejected.
 *
 * @example
 * fromAnthropicRequest({ model: 'claude-sonnet', max_tokens: 100, system: 'Be brief', messages: [{ role: 'user', content: 'Hi' }] })
 * // → { model: 'claude-sonnet', max_tokens: 100, messages: [{ role: 'system', content: 'Be brief' }, { role: 'user', content: 'Hi' }] }
 */
export function fromAnthropicRequest(body: AnthropicRequest): ChatRequest {
  const messages: ChatMessage[] = []
  if (typeof body.system === 'string' && body.system !== '') messages.push({ role: 'system', content: body.system })
  else if (Array.isArray(body.system) && body.system.length > 0) messages.push({ role: 'system', content: body.system.map(toTextPart) })

  body.messages.forEach((msg, i) => {
    if (typeof msg.content === 'string') {
      messages.push({ role: msg.role, content: msg.content })
      return
    }
    if (msg.role === 'assistant') {
      const text = msg.content.filter(isText).map((b) => b.text).join('')
      const calls = msg.content
        .filter((b): b is ToolUseBlock => b.type === 'tool_use')
        .map((b) => ({ id: b.id, type: 'function' as const, function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } }))
      const out: ChatMessage = { role: 'assistant', content: text === '' && calls.length > 0 ? null : text }
      if (calls.length > 0) out.tool_calls = calls
      messages.push(out)
      return
    }
    // Tool results come first in a user turn; each becomes its own tool message, the rest one user message.
    const parts: ContentPart[] = []
    msg.content.forEach((b, j) => {
      if (b.type === 'tool_result') {
        const r = b as ToolResultBlock
        const content = typeof r.content === 'string' ? r.content : (r.content ?? []).filter(isText).map((t) => t.text).join('\n')
        messages.push({ role: 'tool', tool_call_id: r.tool_use_id, content: r.is_error ? `Error: ${content}` : content })
      } else if (b.type === 'thinking' || b.type === 'redacted_thinking') {
        // not meaningful to another provider
      } else {
        parts.push(toCanonicalPart(b, `messages.${i}.content.${j}`))
      }
    })
    if (parts.length > 0) messages.push({ role: 'user', content: parts.every((p) => p.type === 'text' && !p.cache_control) ? parts.map((p) => p.text).join('\n') : parts })
  })

  const out: ChatRequest = { model: body.model, messages, max_tokens: body.max_tokens }
  if (body.tools?.length) {
    out.tools = body.tools.map((t, i) => {
      if (!t.input_schema) throw new GatewayError(400, `tools.${i}: server tool "${String(t.type ?? t.name)}" is only available on Anthropic models`, { param: `tools.${i}` })
      return { type: 'function', function: { name: t.name, ...(t.description ? { description: t.description } : {}), parameters: t.input_schema } }
    })
  }
  const choice = body.tool_choice
  if (choice) {
    if (choice.type === 'none') out.tool_choice = 'none'
    else {
      out.tool_choice = choice.type === 'any' ? 'required' : choice.type === 'tool' ? { type: 'function', function: { name: choice.name } } : 'auto'
      if (choice.disable_parallel_tool_use) out.parallel_tool_calls = false
    }
  }
  if (body.stop_sequences?.length) out.stop = body.stop_sequences
  if (body.temperature !== undefined) out.temperature = body.temperature
  if (body.top_p !== undefined) out.top_p = body.top_p
  if (body.top_k !== undefined) out.top_k = body.top_k
  if (body.metadata?.user_id) out.user = body.metadata.user_id
  if (body.stream) {
    out.stream = true
    out.stream_options = { include_usage: true }
  }
  return out
}

function toTextPart(b: TextBlock): ContentPart {
  return b.cache_control ? { type: 'text', text: b.text, cache_control: b.cache_control } : { type: 'text', text: b.text }
}

function toCanonicalPart(b: ContentBlock, path: string): ContentPart {
  const cache = b.cache_control ? { cache_control: b.cache_control } : {}
  if (b.type === 'text') return { type: 'text', text: String(b.text), ...cache }
  if (b.type === 'image' || b.type === 'document') {
    const src = (b as ImageBlock).source as { type: string; media_type?: string; data?: string; url?: string }
    if (src.type === 'base64') {
      const url = `data:${src.media_type};base64,${src.data}`
      return b.type === 'image' ? { type: 'image_url', image_url: { url }, ...cache } : { type: 'file', file: { file_data: url }, ...cache }
    }
    if (src.type === 'url' && b.type === 'image') return { type: 'image_url', image_url: { url: String(src.url) }, ...cache }
  }
  throw new GatewayError(400, `${path}: content block "${b.type}" is only supported by Anthropic models`, { param: path })
}
