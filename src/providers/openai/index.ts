import type { ProviderConfig } from '../../config/schema.js'
import { GatewayError, UpstreamError } from '../../errors.js'
import { responseEventsToChunks, responseToCompletion, type ResponseObject } from '../../responses/index.js'
import type { ChatChunk, ChatCompletion, ChatRequest, EmbeddingRequest, EmbeddingResponse } from '../../types.js'
import { clientAbortOf, createUpstream, readJson, sseEvents } from '../http.js'
import { attachNative, requestFingerprint } from '../native.js'
import type { CallOptions, Provider } from '../types.js'

type OpenAIConfig = Extract<ProviderConfig, { kind: 'openai' }>

/** An OpenAI-compatible provider; `responsesApi` says whether /v1/responses may be passed through to it. */
export type OpenAIProvider = Provider & { readonly responsesApi: boolean }

/**
 * A provider for any OpenAI-compatible base URL (OpenAI, vLLM, llama-server, Ollama, OpenRouter, Groq, Together).
 * Requests pass through with every field the client sent; streams always ask for usage. A request from
 * /v1/responses goes to the upstream's `/responses` as the client sent it (src/providers/native.ts), unless the
 * provider is configured with `responses_api: false`.
 *
 * @example
 * const openai = createOpenAIProvider('openai', { kind: 'openai', base_url: 'https://api.openai.com/v1', api_key: key, ... })
 * const completion = await openai.chat({ model: 'gpt-4o-mini', messages }, { signal })
 */
export function createOpenAIProvider(name: string, config: OpenAIConfig, missingKeyVar?: string): OpenAIProvider {
  const label = `Upstream provider "${name}"`
  const upstream = createUpstream({
    baseUrl: config.base_url,
    headers: { ...(config.api_key ? { authorization: `Bearer ${config.api_key}` } : {}), ...config.headers },
    connectTimeoutMs: config.timeouts.connect_ms,
    firstByteTimeoutMs: config.timeouts.first_byte_ms,
    totalTimeoutMs: config.timeouts.total_ms,
    maxConnections: config.max_connections,
    parseError: parseOpenAIError,
    label
  })

  const responsesApi = config.responses_api ?? true
  /**
   * The client's own Responses body (from /v1/responses) when no step changed what it says: sent to `/responses`
   * with only `model`, `stream` and the output cap replaced, so custom and built-in tools, reasoning items and
   * `include` reach OpenAI as sent.
   */
  const nativeBody = (req: ChatRequest, opts: CallOptions, stream: boolean): string | undefined => {
    const native = opts.native
    if (!responsesApi || native?.format !== 'responses') return undefined
    if (native.fingerprint !== requestFingerprint(req)) {
      // the translation dropped what chat completions cannot carry: sending it would silently lose tools or state
      if (native.lossy) {
        throw new GatewayError(400, 'A gateway step (guardrails) changed this request, and it uses Responses API features with no chat-completions form (custom or built-in tools, stored state), so it cannot be sent as changed.', { code: 'unsupported_parameter' })
      }
      return undefined
    }
    const cap = req.max_completion_tokens ?? req.max_tokens
    const { stream: _s, ...rest } = native.body
    return JSON.stringify({ ...rest, model: req.model, ...(cap != null ? { max_output_tokens: cap } : {}), ...(stream ? { stream: true } : {}) })
  }

  return {
    name,
    kind: 'openai',
    responsesApi,
    unavailableReason: () => (missingKeyVar ? `environment variable ${missingKeyVar} is not set` : undefined),

    async chat(req, opts) {
      const native = nativeBody(req, opts, false)
      if (native) {
        const response = await readJson<ResponseObject>(await upstream.post('/responses', native, opts), label, clientAbortOf(opts))
        // the surface renders the upstream's own Response while the canonical answer is unchanged
        return attachNative(responseToCompletion(response), 'responses', response)
      }
      const res = await upstream.post('/chat/completions', JSON.stringify({ ...req, stream: false, stream_options: undefined }), opts)
      return readJson<ChatCompletion>(res, label, clientAbortOf(opts))
    },

    async chatStream(req, opts) {
      const native = nativeBody(req, opts, true)
      if (native) {
        const res = await upstream.post('/responses', native, opts)
        // each chunk carries the raw events consumed to produce it, so /v1/responses can relay them as sent
        return responseEventsToChunks(sseEvents(res, label, clientAbortOf(opts)), label, (chunk, raw) => attachNative(chunk, 'responses', raw))
      }
      const body: ChatRequest = { ...req, stream: true, stream_options: { ...(req.stream_options ?? {}), include_usage: true } }
      const res = await upstream.post('/chat/completions', JSON.stringify(body), opts)
      return parseChunks(sseEvents(res, label, clientAbortOf(opts), (ev) => ev.data === '[DONE]'), label)
    },

    async embed(req: EmbeddingRequest, opts) {
      // Always ask for floats: not every compatible server speaks base64; the route encodes for the client.
      const res = await upstream.post('/embeddings', JSON.stringify({ ...req, encoding_format: 'float' }), opts)
      return readJson<EmbeddingResponse>(res, label, clientAbortOf(opts))
    },

    close: () => upstream.close()
  }
}

async function* parseChunks(events: AsyncIterable<{ data: string }>, label: string): AsyncGenerator<ChatChunk> {
  for await (const ev of events) {
    if (ev.data === '[DONE]') return
    let chunk: ChatChunk & { error?: { message?: string; code?: string } }
    try {
      chunk = JSON.parse(ev.data)
    } catch {
      throw new UpstreamError(502, `${label} sent a stream event that is not valid JSON`, { kind: 'protocol', code: 'bad_upstream_response', retryable: false })
    }
    if (chunk.error) {
      throw new UpstreamError(502, chunk.error.message ?? `${label} failed mid-stream`, { kind: 'protocol', code: chunk.error.code ?? 'upstream_stream_error', retryable: false })
    }
    yield chunk
  }
}

/** OpenAI's `{"error":{"message","type","code"}}`, tolerant of the variants compatible servers send. */
export function parseOpenAIError(status: number, text: string): { message: string; type?: string; code?: string | null; kind?: UpstreamError['kind'] } {
  let message = text.slice(0, 500) || `HTTP ${status}`
  let type: string | undefined
  let code: string | null = null
  try {
    const body = JSON.parse(text)
    const err = body?.error ?? body
    if (typeof err === 'string') message = err
    else if (err && typeof err.message === 'string') {
      message = err.message
      type = typeof err.type === 'string' ? err.type : undefined
      code = typeof err.code === 'string' ? err.code : null
    }
  } catch {
    // not JSON: keep the text
  }
  const kind = code === 'context_length_exceeded' || /context length|maximum context/i.test(message) ? 'context_length' : status === 429 ? 'rate_limit' : 'http'
  return { message, type, code, kind }
}
