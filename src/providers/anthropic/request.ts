import { GatewayError } from '../../errors.js'
import type { ChatMessage, ChatRequest, ContentPart, ToolDefinition } from '../../types.js'
import { parseToolInput, toToolUseId } from './response.js'
import type { AnthropicRequest, AnthropicTool, AnthropicToolChoice, CacheControl, ContentBlock, ImageBlock, MessageParam, TextBlock } from './wire.js'

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
