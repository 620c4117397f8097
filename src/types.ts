/**
 * The canonical shapes of Sluice: OpenAI's chat-completions request, response and chunk.
 * Every surface translates to and from these; nothing else does.
 *
 * Fields Sluice does not know are kept (index signatures) so they pass through to
 * OpenAI-compatible targets unchanged.
 */

export type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool'

export type ContentPart =
  | { type: 'text'; text: string; [k: string]: unknown }
  | { type: 'image_url'; image_url: { url: string; detail?: string }; [k: string]: unknown }
  | { type: string; [k: string]: unknown }

export interface ToolCall {
  id: string
  type: 'function'
  function: { name: string; arguments: string }
  /** Position in a streamed delta. */
  index?: number
}

export interface ChatMessage {
  role: Role
  content?: string | ContentPart[] | null
  name?: string
  tool_calls?: ToolCall[]
  tool_call_id?: string
  [k: string]: unknown
}

export interface ToolDefinition {
  type: 'function'
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean }
  [k: string]: unknown
}

export interface ChatRequest {
  model: string
  messages: ChatMessage[]
  stream?: boolean
  stream_options?: { include_usage?: boolean; [k: string]: unknown } | null
  max_tokens?: number | null
  max_completion_tokens?: number | null
  tools?: ToolDefinition[]
  tool_choice?: unknown
  parallel_tool_calls?: boolean
  response_format?: { type: 'text' | 'json_object' | 'json_schema'; json_schema?: { name?: string; schema?: Record<string, unknown>; strict?: boolean } }
  temperature?: number | null
  top_p?: number | null
  n?: number | null
  stop?: string | string[] | null
  seed?: number | null
  logprobs?: boolean | null
  top_logprobs?: number | null
  user?: string
  metadata?: Record<string, string>
  [k: string]: unknown
}

export interface Usage {
  prompt_tokens: number
  completion_tokens: number
  total_tokens: number
  prompt_tokens_details?: { cached_tokens?: number; [k: string]: unknown }
  completion_tokens_details?: Record<string, unknown>
  /** Anthropic cache writes, carried in the canonical usage (OpenAI has no such field). */
  cache_creation_input_tokens?: number
  [k: string]: unknown
}

export interface TokenLogprob {
  token: string
  logprob: number
  bytes?: number[] | null
  top_logprobs?: { token: string; logprob: number; bytes?: number[] | null }[]
}

export interface ChatChoice {
  index: number
  message: ChatMessage
  finish_reason: string | null
  logprobs?: { content: TokenLogprob[] | null; [k: string]: unknown } | null
}

export interface ChatCompletion {
  id: string
  object: 'chat.completion'
  created: number
  model: string
  choices: ChatChoice[]
  usage?: Usage
  system_fingerprint?: string | null
  [k: string]: unknown
}

/** A streamed fragment of a tool call: id, type and name come first, then argument pieces. */
export interface ToolCallDelta {
  index: number
  id?: string
  type?: 'function'
  function?: { name?: string; arguments?: string }
}

export interface ChunkChoice {
  index: number
  delta: Partial<Omit<ChatMessage, 'tool_calls'>> & { tool_calls?: ToolCallDelta[] }
  finish_reason: string | null
  logprobs?: { content: TokenLogprob[] | null; [k: string]: unknown } | null
}

export interface ChatChunk {
  id: string
  object: 'chat.completion.chunk'
  created: number
  model: string
  choices: ChunkChoice[]
  usage?: Usage | null
  [k: string]: unknown
}

export interface EmbeddingRequest {
  model: string
  input: string | string[] | number[] | number[][]
  encoding_format?: 'float' | 'base64'
  dimensions?: number
  user?: string
  [k: string]: unknown
}

export interface EmbeddingResponse {
  object: 'list'
  data: { object: 'embedding'; index: number; embedding: number[] | string }[]
  model: string
  usage: { prompt_tokens: number; total_tokens: number }
}

/** Who is calling: resolved from the virtual key. Never holds the key itself. */
export interface Principal {
  team: string
  /** Stable id of the key: a short prefix of its SHA-256, safe to log and store. */
  keyId: string
  user?: string
}
