import type { ChatCompletion, ToolCall, Usage } from '../../types.js'
import type { AnthropicMessage, AnthropicUsage, ContentBlock, StopReason, TextBlock, ToolUseBlock } from './wire.js'

/**
 * Anthropic stop_reason → OpenAI finish_reason.
 *
 * @example
 * toFinishReason('tool_use') // → 'tool_calls'
 */
export function toFinishReason(reason: StopReason | string | null | undefined): string | null {
  switch (reason) {
    case null:
    case undefined:
      return null
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length'
    case 'tool_use':
      return 'tool_calls'
    case 'refusal':
      return 'content_filter'
    default:
      // end_turn, stop_sequence, pause_turn: the model stopped on its own
      return 'stop'
  }
}

/**
 * OpenAI finish_reason → Anthropic stop_reason.
 *
 * @example
 * toStopReason('length') // → 'max_tokens'
 */
export function toStopReason(reason: string | null | undefined): StopReason | null {
  switch (reason) {
    case null:
    case undefined:
      return null
    case 'length':
      return 'max_tokens'
    case 'tool_calls':
    case 'function_call':
      return 'tool_use'
    case 'content_filter':
      return 'refusal'
    default:
      return 'end_turn'
  }
}

/**
 * Anthropic usage → canonical usage. Anthropic's input_tokens excludes cached tokens; OpenAI's prompt_tokens
 * includes them, so prompt_tokens = input + cache read + cache write.
 *
 * @example
 * toCanonicalUsage({ input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 100, cache_creation_input_tokens: 0 })
 * // → { prompt_tokens: 110, completion_tokens: 5, total_tokens: 115, prompt_tokens_details: { cached_tokens: 100 }, cache_creation_input_tokens: 0 }
 */
export function toCanonicalUsage(u: Partial<AnthropicUsage>): Usage {
  const read = u.cache_read_input_tokens ?? 0
  const write = u.cache_creation_input_tokens ?? 0
  const prompt = (u.input_tokens ?? 0) + read + write
  const completion = u.output_tokens ?? 0
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: read },
    cache_creation_input_tokens: write
  }
}

/**
 * Canonical usage → Anthropic usage (the inverse of {@link toCanonicalUsage}).
 *
 * @example
 * toAnthropicUsage({ prompt_tokens: 110, completion_tokens: 5, total_tokens: 115, prompt_tokens_details: { cached_tokens: 100 } })
 * // → { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 100, cache_creation_input_tokens: 0 }
 */
export function toAnthropicUsage(u: Usage | null | undefined): AnthropicUsage {
  const read = u?.prompt_tokens_details?.cached_tokens ?? 0
  const write = u?.cache_creation_input_tokens ?? 0
  return {
    input_tokens: Math.max(0, (u?.prompt_tokens ?? 0) - read - write),
    output_tokens: u?.completion_tokens ?? 0,
    cache_creation_input_tokens: write,
    cache_read_input_tokens: read
  }
}

/**
 * A Messages API response → a canonical chat completion. Text blocks join into `content`; tool_use blocks
 * become `tool_calls` with JSON-encoded arguments. Thinking blocks have no OpenAI equivalent and are dropped.
 *
 * @example
 * fromAnthropicMessage({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5',
 *   content: [{ type: 'text', text: 'Hi' }], stop_reason: 'end_turn', stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } })
 * // → { object: 'chat.completion', choices: [{ message: { role: 'assistant', content: 'Hi' }, finish_reason: 'stop' }], ... }
 */
export function fromAnthropicMessage(msg: AnthropicMessage, created = Math.floor(Date.now() / 1000)): ChatCompletion {
  const text = msg.content.filter((b): b is TextBlock => b.type === 'text').map((b) => b.text)
  const toolCalls: ToolCall[] = msg.content
    .filter((b): b is ToolUseBlock => b.type === 'tool_use')
    .map((b) => ({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } }))
  const message: ChatCompletion['choices'][number]['message'] = {
    role: 'assistant',
    content: text.length > 0 ? text.join('') : toolCalls.length > 0 ? null : ''
  }
  if (toolCalls.length > 0) message.tool_calls = toolCalls
  return {
    id: msg.id,
    object: 'chat.completion',
    created,
    model: msg.model,
    choices: [{ index: 0, message, finish_reason: toFinishReason(msg.stop_reason), logprobs: null }],
    usage: toCanonicalUsage(msg.usage)
  }
}

/**
 * A canonical chat completion → a Messages API response (for the inbound /v1/messages surface).
 * Only the first choice is used: Anthropic has no `n`.
 *
 * @example
 * toAnthropicMessage(completion).content // → [{ type: 'text', text: 'Hi' }, { type: 'tool_use', id, name, input }]
 */
export function toAnthropicMessage(completion: ChatCompletion): AnthropicMessage {
  const choice = completion.choices[0]
  const content: ContentBlock[] = []
  const text = choice?.message.content
  if (typeof text === 'string' && text !== '') content.push({ type: 'text', text })
  else if (Array.isArray(text)) {
    for (const part of text) if (part.type === 'text' && typeof part.text === 'string') content.push({ type: 'text', text: part.text })
  }
  for (const call of choice?.message.tool_calls ?? []) {
    content.push({ type: 'tool_use', id: toToolUseId(call.id), name: call.function.name, input: parseToolInput(call.function.arguments) })
  }
  return {
    id: toMessageId(completion.id),
    type: 'message',
    role: 'assistant',
    model: completion.model,
    content,
    stop_reason: toStopReason(choice?.finish_reason),
    stop_sequence: null,
    usage: toAnthropicUsage(completion.usage)
  }
}

/** Anthropic SDKs and Claude Code expect `msg_` ids. */
export function toMessageId(id: string): string {
  return id.startsWith('msg_') ? id : `msg_${id}`
}

/** Anthropic tool_use ids match ^[a-zA-Z0-9_-]+$; other providers' ids may not. */
export function toToolUseId(id: string): string {
  return id.replace(/[^a-zA-Z0-9_-]/g, '_')
}

/** Tool arguments JSON → the object Anthropic's `input` must be. */
export function parseToolInput(args: string | undefined): Record<string, unknown> {
  if (!args || args.trim() === '') return {}
  try {
    const v = JSON.parse(args)
    return v && typeof v === 'object' && !Array.isArray(v) ? v : { value: v }
  } catch {
    // a model's malformed arguments stay visible instead of failing the whole turn
    return { _raw_arguments: args }
  }
}
