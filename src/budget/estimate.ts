import type { ResolvedModel } from '../config/load.js'
import { countPromptTokens, countTextTokens, encodingFor, promptTokenBound } from '../tokens.js'
import type { ChatRequest, EmbeddingRequest } from '../types.js'

/** Output cap assumed for a request that sets no max_tokens when its model has no `max_output_tokens`. */
export const DEFAULT_OUTPUT_CAP = 4096

export interface WorstCase {
  promptTokens: number
  /** Output tokens of all choices together. */
  outputTokens: number
  /** The per-choice cap, and whether the request set it itself. */
  outputCap: number
  capFromRequest: boolean
  usd: number
}

/**
 * The most a request can cost on a model: its prompt counted with tiktoken for the model's encoding, plus
 * the output cap (the request's max_completion_tokens / max_tokens, else the model's `max_output_tokens`, else
 * 4096) for each of `n` choices, at the model's price. Prompt tokens are priced at the dearest of input,
 * cache-write and cached-input, so a prompt-cache write cannot exceed the estimate. With `bound`, texts not
 * counted before are taken at their UTF-8 length instead of being tokenized (`promptTokenBound`).
 *
 * @example
 * worstCase({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 100 }, model).usd
 */
export function worstCase(request: ChatRequest, model: ResolvedModel, opts: { bound?: boolean } = {}): WorstCase {
  const encoding = encodingFor(model.model, model.encoding)
  const promptTokens = opts.bound ? promptTokenBound(request, encoding) : countPromptTokens(request, encoding)
  const requested = requestedCap(request)
  const outputCap = requested ?? model.max_output_tokens ?? DEFAULT_OUTPUT_CAP
  const outputTokens = outputCap * Math.max(1, request.n ?? 1)
  const usd = (promptTokens * promptPrice(model) + outputTokens * model.price.output) / 1e6
  return { promptTokens, outputTokens, outputCap, capFromRequest: requested !== undefined, usd }
}

/** The output cap a request sets itself; with both fields set, the larger (providers differ in which they honour). */
export function requestedCap(request: Pick<ChatRequest, 'max_tokens' | 'max_completion_tokens'>): number | undefined {
  const a = request.max_completion_tokens ?? undefined
  const b = request.max_tokens ?? undefined
  return a === undefined ? b : b === undefined ? a : Math.max(a, b)
}

/** USD per million prompt tokens at worst: the dearest way a prompt token can be billed (plain, cached read, cache write). */
export function promptPrice(model: ResolvedModel): number {
  return Math.max(model.price.input, model.price.cache_write ?? 0, model.price.cached_input ?? 0)
}

/**
 * The request with the assumed output cap made explicit, so the provider cannot generate past what was
 * reserved. o-series and gpt-5 models take `max_completion_tokens`; others take `max_tokens`.
 */
export function withOutputCap(request: ChatRequest, model: ResolvedModel, cap: number): ChatRequest {
  if ((request.max_completion_tokens ?? request.max_tokens) != null) return request
  return /^(o\d|gpt-5)/.test(model.model) ? { ...request, max_completion_tokens: cap } : { ...request, max_tokens: cap }
}

/** USD to integer nano-USD, rounded up (reservations must not under-count). */
export function toNanosCeil(usd: number): number {
  return Math.ceil(usd * 1e9 - 1e-6)
}

/** USD to integer nano-USD, rounded to nearest (actual cost). */
export function toNanos(usd: number): number {
  return Math.round(usd * 1e9)
}

/**
 * The most an embeddings request can cost: its input tokens (texts counted with tiktoken for the model's
 * encoding, token arrays by their length) at the model's input price. Embeddings have no output.
 *
 * @example
 * embeddingWorstCase({ model: 'text-embedding-3-small', input: ['a', 'b'] }, model) // { tokens: 2, usd: 4e-8 }
 */
export function embeddingWorstCase(request: Pick<EmbeddingRequest, 'input'>, model: ResolvedModel): { tokens: number; usd: number } {
  const enc = encodingFor(model.model, model.encoding)
  const input = request.input
  let tokens = 0
  if (typeof input === 'string') tokens = countTextTokens(input, enc)
  else if (input.length > 0 && typeof input[0] === 'number') tokens = input.length
  else for (const item of input as (string | number[])[]) tokens += typeof item === 'string' ? countTextTokens(item, enc) : item.length
  return { tokens, usd: (tokens * promptPrice(model)) / 1e6 }
}
