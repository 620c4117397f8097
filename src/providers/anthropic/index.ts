import { placeCacheBreakpoints } from '../../cache/prompt-caching.js'
import type { ProviderConfig } from '../../config/schema.js'
import { UpstreamError } from '../../errors.js'
import type { ChatCompletion } from '../../types.js'
import { clientAbortOf, createUpstream, readJson, sseEvents } from '../http.js'
import { attachNative, requestFingerprint } from '../native.js'
import type { CallOptions, Provider } from '../types.js'
import { parseAnthropicError } from './errors.js'
import { toAnthropicRequest } from './request.js'
import { fromAnthropicMessage } from './response.js'
import { anthropicEventsToChunks } from './stream.js'
import type { AnthropicMessage, AnthropicRequest, AnthropicStreamEvent } from './wire.js'

export * from './cache-control.js'
export * from './errors.js'
export * from './request.js'
export * from './response.js'
export * from './stream.js'
export type * from './wire.js'

type AnthropicConfig = Extract<ProviderConfig, { kind: 'anthropic' }>

export interface AnthropicProviderOptions {
  /** max_tokens for requests that set none (Anthropic requires it). Default 4096. */
  defaultMaxTokens?: number
  /** Last change to the Messages API body before it is sent, e.g. placing cache_control breakpoints. */
  transformBody?: (body: AnthropicRequest) => AnthropicRequest
}

/**
 * A provider for Anthropic's Messages API. Canonical (OpenAI chat) requests are translated to Messages API
 * requests and the answers back, streaming included.
 *
 * @example
 * const claude = createAnthropicProvider('anthropic', { kind: 'anthropic', base_url: 'https://api.anthropic.com', version: '2023-06-01', api_key: key, ... })
 * const completion = await claude.chat({ model: 'claude-sonnet-4-5', messages }, { signal })
 */
export function createAnthropicProvider(name: string, config: AnthropicConfig, missingKeyVar?: string, options: AnthropicProviderOptions = {}): AnthropicProvider {
  const label = `Upstream provider "${name}"`
  const upstream = createUpstream({
    baseUrl: config.base_url,
    headers: {
      ...(config.api_key ? { 'x-api-key': config.api_key } : {}),
      'anthropic-version': config.version,
      ...config.headers
    },
    connectTimeoutMs: config.timeouts.connect_ms,
    firstByteTimeoutMs: config.timeouts.first_byte_ms,
    totalTimeoutMs: config.timeouts.total_ms,
    maxConnections: config.max_connections,
    parseError: parseAnthropicError,
    label
  })
  // Accept base URLs written either way: https://api.anthropic.com or https://api.anthropic.com/v1
  const path = /\/v1\/?$/.test(new URL(config.base_url).pathname) ? '/messages' : '/v1/messages'
  const transformBody = options.transformBody ?? ((b: AnthropicRequest) => b)
  // the team's prompt-caching policy places cache_control last, on translated and native bodies alike
  const transform = (b: AnthropicRequest, opts: CallOptions): AnthropicRequest =>
    opts.promptCache ? placeCacheBreakpoints(transformBody(b), opts.promptCache) : transformBody(b)
  const build = (req: Parameters<Provider['chat']>[0], opts: CallOptions, stream: boolean): string => {
    const body = transform(toAnthropicRequest(req, { defaultMaxTokens: options.defaultMaxTokens }), opts)
    return JSON.stringify(stream ? { ...body, stream: true } : body)
  }
  /**
   * The client's own Messages body (from /v1/messages) when no step changed what it says: sent with only `model`
   * and `max_tokens` replaced, so thinking signatures and cache_control breakpoints reach Anthropic as sent.
   */
  const nativeBody = (req: Parameters<Provider['chat']>[0], opts: CallOptions, stream: boolean): string | undefined => {
    const native = opts.native
    if (native?.format !== 'anthropic' || native.fingerprint !== requestFingerprint(req)) return undefined
    const { stream: _stream, ...rest } = native.body
    const body = transform({ ...(rest as AnthropicRequest), model: req.model, max_tokens: req.max_completion_tokens ?? req.max_tokens ?? (rest.max_tokens as number) }, opts)
    return JSON.stringify(stream ? { ...body, stream: true } : body)
  }
  // `signal` set by name: the gateway's options keep it as a getter on their prototype, which a spread leaves out
  const withNativeHeaders = (opts: CallOptions): CallOptions =>
    opts.native?.headers ? { ...opts, signal: opts.signal, headers: { ...opts.headers, ...opts.native.headers } } : opts

  return {
    name,
    kind: 'anthropic',
    unavailableReason: () => (missingKeyVar ? `environment variable ${missingKeyVar} is not set` : undefined),

    async chat(req, opts): Promise<ChatCompletion> {
      const native = nativeBody(req, opts, false)
      const res = await upstream.post(path, native ?? build(req, opts, false), native ? withNativeHeaders(opts) : opts)
      const message = await readJson<AnthropicMessage>(res, label, clientAbortOf(opts))
      const completion = fromAnthropicMessage(message)
      // the surface may render Anthropic's own answer (thinking blocks, signatures) while the canonical one is unchanged
      return native ? attachNative(completion, 'anthropic', message) : completion
    },

    async chatStream(req, opts) {
      const native = nativeBody(req, opts, true)
      const res = await upstream.post(path, native ?? build(req, opts, true), native ? withNativeHeaders(opts) : opts)
      const messages = sseEvents(res, label, clientAbortOf(opts), (ev) => ev.event === 'message_stop')
      if (!native) return anthropicEventsToChunks(parseEvents(messages, label))
      // each chunk carries the raw events consumed to produce it, so /v1/messages can relay them as sent
      const raw: NativeEvent[] = []
      const tapped = (async function* () {
        for await (const m of messages) {
          raw.push({ event: m.event ?? '', data: m.data })
          yield m
        }
      })()
      return mapIterable(anthropicEventsToChunks(parseEvents(tapped, label)), (chunk) => attachNative(chunk, 'anthropic', raw.splice(0)))
    },

    /** Anthropic's own token count for a Messages body (POST /v1/messages/count_tokens), `model` replaced. */
    async countTokens(body: Record<string, unknown>, model: string, opts: CallOptions): Promise<{ input_tokens: number }> {
      const res = await upstream.post(`${path}/count_tokens`, JSON.stringify({ ...body, model }), withNativeHeaders(opts))
      return readJson<{ input_tokens: number }>(res, label, clientAbortOf(opts))
    },

    close: () => upstream.close()
  }
}

/** One upstream SSE event as received: its `event:` line and `data:` text. */
export interface NativeEvent {
  event: string
  data: string
}

/** An Anthropic provider also answers count_tokens (for /v1/messages/count_tokens). */
export type AnthropicProvider = Provider & {
  countTokens(body: Record<string, unknown>, model: string, opts: CallOptions): Promise<{ input_tokens: number }>
}

/** Map an async iterable lazily; `return()` reaches the source so the upstream request is cancelled. */
function mapIterable<T, U>(source: AsyncIterable<T>, fn: (item: T) => U): AsyncIterable<U> {
  const it = source[Symbol.asyncIterator]()
  const out: AsyncIterator<U> = {
    async next() {
      const r = await it.next()
      return r.done ? { done: true, value: undefined } : { done: false, value: fn(r.value) }
    },
    async return() {
      await it.return?.()
      return { done: true, value: undefined }
    }
  }
  return { [Symbol.asyncIterator]: () => out }
}

/** SSE messages → typed events; the JSON `type` is authoritative (it always equals the `event:` line). */
async function* parseEvents(messages: AsyncIterable<{ event?: string; data: string }>, label: string): AsyncGenerator<AnthropicStreamEvent> {
  for await (const m of messages) {
    let ev: AnthropicStreamEvent
    try {
      ev = JSON.parse(m.data) as AnthropicStreamEvent
    } catch {
      throw new UpstreamError(502, `${label} sent a stream event that is not valid JSON`, { kind: 'protocol', code: 'bad_upstream_response', retryable: false })
    }
    yield ev
  }
}
