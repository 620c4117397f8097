import type { ProviderConfig } from '../../config/schema.js'
import { UpstreamError } from '../../errors.js'
import type { ChatCompletion } from '../../types.js'
import { createUpstream, readJson, sseEvents } from '../http.js'
import type { Provider } from '../types.js'
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
export function createAnthropicProvider(name: string, config: AnthropicConfig, missingKeyVar?: string, options: AnthropicProviderOptions = {}): Provider {
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
  const transform = options.transformBody ?? ((b: AnthropicRequest) => b)
  const build = (req: Parameters<Provider['chat']>[0], stream: boolean): string => {
    const body = transform(toAnthropicRequest(req, { defaultMaxTokens: options.defaultMaxTokens }))
    return JSON.stringify(stream ? { ...body, stream: true } : body)
  }

  return {
    name,
    kind: 'anthropic',
    unavailableReason: () => (missingKeyVar ? `environment variable ${missingKeyVar} is not set` : undefined),

    async chat(req, opts): Promise<ChatCompletion> {
      const res = await upstream.post(path, build(req, false), opts)
      return fromAnthropicMessage(await readJson<AnthropicMessage>(res, label, opts.signal))
    },

    async chatStream(req, opts) {
      const res = await upstream.post(path, build(req, true), opts)
      return anthropicEventsToChunks(parseEvents(sseEvents(res, label, opts.signal), label))
    },

    close: () => upstream.close()
  }
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
