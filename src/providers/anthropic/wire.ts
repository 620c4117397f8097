/**
 * The Anthropic Messages API wire shapes Sluice reads and writes (https://docs.anthropic.com/en/api/messages).
 * Only the fields translation touches are typed; index signatures keep the rest (thinking signatures,
 * citations, cache_control) so bytes we do not understand still pass through.
 */

export interface CacheControl {
  type: 'ephemeral'
  ttl?: '5m' | '1h'
}

export interface TextBlock {
  type: 'text'
  text: string
  cache_control?: CacheControl
  [k: string]: unknown
}

export interface ImageBlock {
  type: 'image'
  source: { type: 'base64'; media_type: string; data: string } | { type: 'url'; url: string }
  cache_control?: CacheControl
  [k: string]: unknown
}

export interface ToolUseBlock {
  type: 'tool_use'
  id: string
  name: string
  input: unknown
  cache_control?: CacheControl
  [k: string]: unknown
}

export interface ToolResultBlock {
  type: 'tool_result'
  tool_use_id: string
  content?: string | (TextBlock | ImageBlock)[]
  is_error?: boolean
  cache_control?: CacheControl
  [k: string]: unknown
}

/** Any other block (document, thinking, redacted_thinking, server tool blocks): carried as is. */
export interface OtherBlock {
  type: string
  cache_control?: CacheControl
  [k: string]: unknown
}

export type ContentBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock | OtherBlock

export interface MessageParam {
  role: 'user' | 'assistant'
  content: string | ContentBlock[]
}

export interface AnthropicTool {
  name: string
  description?: string
  input_schema: Record<string, unknown>
  cache_control?: CacheControl
  [k: string]: unknown
}

export type AnthropicToolChoice =
  | { type: 'auto'; disable_parallel_tool_use?: boolean }
  | { type: 'any'; disable_parallel_tool_use?: boolean }
  | { type: 'tool'; name: string; disable_parallel_tool_use?: boolean }
  | { type: 'none' }

export interface AnthropicRequest {
  model: string
  max_tokens: number
  messages: MessageParam[]
  system?: string | TextBlock[]
  tools?: AnthropicTool[]
  tool_choice?: AnthropicToolChoice
  stop_sequences?: string[]
  temperature?: number
  top_p?: number
  top_k?: number
  metadata?: { user_id?: string }
  stream?: boolean
  [k: string]: unknown
}

export interface AnthropicUsage {
  input_tokens: number
  output_tokens: number
  cache_creation_input_tokens?: number | null
  cache_read_input_tokens?: number | null
  [k: string]: unknown
}

export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'pause_turn' | 'refusal' | 'model_context_window_exceeded'

export interface AnthropicMessage {
  id: string
  type: 'message'
  role: 'assistant'
  model: string
  content: ContentBlock[]
  stop_reason: StopReason | null
  stop_sequence: string | null
  usage: AnthropicUsage
  [k: string]: unknown
}

export interface AnthropicErrorBody {
  type: 'error'
  error: { type: string; message: string }
  request_id?: string
}

/** One streamed event; the SSE `event:` line always equals `type`. */
export type AnthropicStreamEvent =
  | { type: 'message_start'; message: AnthropicMessage }
  | { type: 'content_block_start'; index: number; content_block: ContentBlock }
  | {
      type: 'content_block_delta'
      index: number
      delta:
        | { type: 'text_delta'; text: string }
        | { type: 'input_json_delta'; partial_json: string }
        | { type: 'thinking_delta'; thinking: string }
        | { type: 'signature_delta'; signature: string }
        | { type: string; [k: string]: unknown }
    }
  | { type: 'content_block_stop'; index: number }
  | {
      type: 'message_delta'
      delta: { stop_reason: StopReason | null; stop_sequence: string | null }
      usage: Partial<AnthropicUsage> & { output_tokens: number }
    }
  | { type: 'message_stop' }
  | { type: 'ping' }
  | { type: 'error'; error: { type: string; message: string } }

/** Anthropic's error `type` for each HTTP status (https://docs.anthropic.com/en/api/errors). */
export const ANTHROPIC_ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'billing_error',
  403: 'permission_error',
  404: 'not_found_error',
  413: 'request_too_large',
  429: 'rate_limit_error',
  500: 'api_error',
  504: 'timeout_error',
  529: 'overloaded_error'
}

/** The HTTP status Anthropic uses for each error `type`; used for errors that arrive inside a stream. */
export const ANTHROPIC_ERROR_STATUS: Record<string, number> = Object.fromEntries(
  Object.entries(ANTHROPIC_ERROR_TYPES).map(([status, type]) => [type, Number(status)])
)
