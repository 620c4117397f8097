import type { RequestAbort } from '../abort.js'
import type { ProviderCachePolicy } from '../cache/schema.js'
import type { NativeRequest } from './native.js'
import type { ChatChunk, ChatCompletion, ChatRequest, EmbeddingRequest, EmbeddingResponse } from '../types.js'

/** Per-call options every provider honours. */
export interface CallOptions {
  /** Aborted when the client disconnects or the gateway gives up: the upstream request must be cancelled. */
  signal: AbortSignal
  /**
   * The same abort without an AbortSignal (the gateway's request abort, src/abort.ts). When given, the HTTP
   * providers listen through it and never read `signal`, which the gateway then makes only for those that do.
   */
  abort?: RequestAbort
  /** Milliseconds to wait for response headers (first byte for streams). */
  firstByteTimeoutMs?: number
  /** Milliseconds for the whole call. */
  totalTimeoutMs?: number
  /** The client's original body when the surface speaks a provider's own format (see src/providers/native.ts). */
  native?: NativeRequest
  /** Extra headers for this call only (e.g. the client's anthropic-beta on a native pass-through). */
  headers?: Record<string, string>
  /** The team's provider prompt-caching settings (policy `cache.provider`); Anthropic places cache_control with them. */
  promptCache?: ProviderCachePolicy
}

/**
 * A provider speaks one upstream wire protocol and translates it to the canonical (OpenAI chat) shapes.
 * `req.model` is already the provider's own model name.
 *
 * `chatStream` resolves once the upstream has answered with a successful status (before the first chunk is
 * forwarded), so a caller can still fall back when it rejects. It must ask the upstream for usage and emit
 * it as a final chunk with `usage` set and `choices: []`.
 */
export interface Provider {
  readonly name: string
  readonly kind: 'openai' | 'anthropic' | 'llama'
  chat(req: ChatRequest, opts: CallOptions): Promise<ChatCompletion>
  chatStream(req: ChatRequest, opts: CallOptions): Promise<AsyncIterable<ChatChunk>>
  embed?(req: EmbeddingRequest, opts: CallOptions): Promise<EmbeddingResponse>
  /** Why this provider cannot serve right now (e.g. a missing API key variable), or undefined. */
  unavailableReason?(): string | undefined
  close(): Promise<void>
}
