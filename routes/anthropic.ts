import { Hono, type Context } from 'hono'
import { GatewayError, toGatewayError } from '../src/errors.js'
import type { Gateway } from '../src/gateway.js'
import {
  chunksToAnthropicEvents,
  formatAnthropicSSE,
  fromAnthropicRequest,
  toAnthropicError,
  toAnthropicMessage,
  type AnthropicMessage,
  type AnthropicProvider,
  type AnthropicRequest,
  type ContentBlock
} from '../src/providers/anthropic/index.js'
import { NATIVE_REQUEST_KEY, nativeAnswer, requestFingerprint, type NativeRequest } from '../src/providers/native.js'
import { countPromptTokens, encodingFor } from '../src/tokens.js'
import type { ChatChunk, ChatRequest } from '../src/types.js'
import { requestAbort, requestHeaders, requestSignal } from './incoming.js'
import { lastModel, nativeRelayStream } from './native-relay.js'
import { costHeaders } from './openai.js'
import { sseResponse, streamHeaders } from './sse.js'
import { jsonAnswer, requestIdOf } from './request-id.js'
import { bodySchema, readBody } from './validate.js'

const block = { type: 'object', required: ['type'], properties: { type: { type: 'string' } } }
const messageParam = { type: 'object', required: ['role', 'content'], properties: { role: { enum: ['user', 'assistant'] }, content: { type: ['string', 'array'], items: block } } }
/** What a Messages request and a count_tokens request share. */
const countTokensFields = {
  model: { type: 'string', minLength: 1, maxLength: 256 },
  messages: { type: 'array', minItems: 1, maxItems: 100_000, items: messageParam },
  system: { type: ['string', 'array'], items: { type: 'object', required: ['type', 'text'], properties: { type: { const: 'text' }, text: { type: 'string' } } } },
  tools: { type: 'array', maxItems: 1024, items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } },
  tool_choice: { type: 'object', required: ['type'], properties: { type: { enum: ['auto', 'any', 'tool', 'none'] } } },
  thinking: { type: 'object', required: ['type'], properties: { type: { type: 'string' } } }
}
const countTokensSchema = bodySchema<AnthropicRequest>({ type: 'object', required: ['model', 'messages'], properties: countTokensFields })
/** The Messages request: checked where Sluice relies on a field, carried as sent otherwise. */
const messagesSchema = bodySchema<AnthropicRequest>({
  type: 'object',
  required: ['model', 'messages', 'max_tokens'],
  properties: {
    ...countTokensFields,
    max_tokens: { type: 'integer', exclusiveMinimum: 0, maximum: 10_000_000 },
    stream: { type: 'boolean' },
    stop_sequences: { type: 'array', items: { type: 'string' } },
    temperature: { type: 'number', minimum: 0, maximum: 1 },
    top_p: { type: 'number', minimum: 0, maximum: 1 },
    top_k: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    metadata: { type: 'object', properties: { user_id: { type: ['string', 'null'] } } }
  }
})

/**
 * The Anthropic Messages surface: `POST /v1/messages` and `POST /v1/messages/count_tokens`, for Anthropic SDKs
 * and Claude Code (`ANTHROPIC_BASE_URL`). Keys come as `x-api-key` or `Authorization: Bearer`; any
 * `anthropic-version` is accepted. Every error, auth and validation included, is in Anthropic's shape.
 *
 * The request is translated to the canonical shape for the pipeline, and the original body rides along in
 * `ctx.state[NATIVE_REQUEST_KEY]`, so an Anthropic target receives the client's bytes (src/providers/native.ts).
 *
 * @example
 * app.route('/v1', anthropicRoutes(gateway))
 */
export function anthropicRoutes(gateway: Gateway) {
  const app = new Hono()

  app.onError((err, c) => {
    const { status, body } = toAnthropicError(toGatewayError(err))
    const headers: Record<string, string> = { ...(err instanceof GatewayError ? err.headers : {}) }
    // Anthropic SDKs read the request id of an error from `request-id`
    const id = requestIdOf(c)
    if (id) headers['request-id'] = id
    return c.json(body, status as 400, headers)
  })

  app.post('/messages', async (c) => {
    // the key first: an unknown caller gets 401 without making the gateway read and parse its body
    const headers = requestHeaders(c)
    const principal = await gateway.identify(headers)
    const body = await readBody(c, messagesSchema)
    const canonical = toCanonical(body, targetKind(gateway, body.model) === 'anthropic')
    const native: NativeRequest = { format: 'anthropic', body, fingerprint: requestFingerprint(canonical), headers: betaHeader(headers) }
    const { ctx, result } = await gateway.chat({ headers, principal, body: canonical, ...requestAbort(c), surface: 'messages', state: { [NATIVE_REQUEST_KEY]: native }, id: requestIdOf(c) })
    if (result.type === 'json') {
      const message = nativeAnswer<AnthropicMessage>(result.body, 'anthropic') ?? toAnthropicMessage(result.body)
      const answerHeaders = await costHeaders(gateway, ctx)
      answerHeaders['request-id'] = ctx.id
      return jsonAnswer(c, message, 200, answerHeaders)
    }
    const events = anthropicEventStream(result.stream, {
      // with guardrails on, the canonical (guarded) chunks are what the client gets; see README, Inbound surfaces
      relayNative: !ctx.policy.guardrails,
      inputTokens: () => countPromptTokens(ctx.request, encodingFor(lastModel(ctx)))
    })
    return sseResponse(c, events, { render: (s) => s, end: () => '', renderError: errorEvent }, { ...streamHeaders(ctx), 'request-id': ctx.id })
  })

  app.post('/messages/count_tokens', async (c) => countTokens(c, gateway))

  return app
}

/** Only what the client sends to steer Anthropic features; auth and versions stay the gateway's. */
function betaHeader(headers: Record<string, string | undefined>): Record<string, string> | undefined {
  const beta = headers['anthropic-beta']
  return beta ? { 'anthropic-beta': beta } : undefined
}

function targetKind(gateway: Gateway, alias: string): string | undefined {
  return gateway.runtime.targets.get(alias)?.provider.kind
}

/** Block types the canonical shape can carry; others exist only on Anthropic targets. */
function translatable(b: ContentBlock): boolean {
  const source = (b as { source?: { type?: string } }).source
  if (b.type === 'text' || b.type === 'tool_result' || b.type === 'tool_use' || b.type === 'thinking' || b.type === 'redacted_thinking') return true
  if (b.type === 'image') return source?.type === 'base64' || source?.type === 'url'
  if (b.type === 'document') return source?.type === 'base64'
  return false
}

/**
 * The canonical request for the pipeline. For an Anthropic target the native body is what gets sent, so parts
 * with no canonical form (server tools, search results, URL documents) are left out of the canonical view
 * instead of failing the request; for other targets they are a 400 (fromAnthropicRequest says which).
 */
function toCanonical(body: AnthropicRequest, lenient: boolean): ChatRequest {
  if (!lenient) return fromAnthropicRequest(body)
  return fromAnthropicRequest({
    ...body,
    tools: body.tools?.filter((t) => t.input_schema !== undefined),
    messages: body.messages.map((m) => (typeof m.content === 'string' ? m : { ...m, content: m.content.filter(translatable) }))
  })
}

/**
 * Canonical chunks → Anthropic SSE text. When the first chunk carries the upstream's own events (an Anthropic
 * target reached through the native pass-through) and `relayNative` allows, those events are relayed as sent:
 * thinking blocks and signatures survive. Otherwise the events are rebuilt from the canonical chunks.
 */
function anthropicEventStream(stream: AsyncIterable<ChatChunk>, opts: { relayNative: boolean; inputTokens: () => number }): AsyncIterable<string> {
  return nativeRelayStream(stream, {
    format: 'anthropic',
    relayNative: opts.relayNative,
    errorEvent,
    rebuild: async function* (chunks) {
      for await (const ev of chunksToAnthropicEvents(chunks, { inputTokens: opts.inputTokens() })) yield formatAnthropicSSE(ev)
    }
  })
}

function errorEvent(err: GatewayError): string {
  return formatAnthropicSSE({ type: 'error', error: toAnthropicError(err).body.error })
}

/**
 * `POST /v1/messages/count_tokens`: forwarded to Anthropic when the model is an Anthropic target (their count is
 * exact), otherwise counted with tiktoken on the canonical translation and marked `x-sluice-token-count: estimate`.
 */
async function countTokens(c: Context, gateway: Gateway): Promise<Response> {
  // count_tokens takes a Messages body without max_tokens
  const headers = requestHeaders(c)
  const principal = await gateway.identify(headers)
  const body = await readBody(c, countTokensSchema)
  if (!gateway.models(principal).some((m) => m.id === body.model && m.type === 'chat')) {
    throw new GatewayError(404, `The model "${body.model}" does not exist or you do not have access to it.`, { code: 'model_not_found', param: 'model' })
  }
  const target = gateway.runtime.targets.get(body.model)
  if (target?.provider.kind === 'anthropic' && !target.provider.unavailableReason?.()) {
    const provider = target.provider as AnthropicProvider
    const signal = requestSignal(c)
    try {
      const counted = await provider.countTokens(body, target.model.model, { signal, native: undefined, headers: betaHeader(headers) })
      return c.json({ input_tokens: counted.input_tokens }, 200, { 'x-sluice-token-count': 'exact' })
    } catch (err) {
      if (signal.aborted) throw err
      // counting is advisory: an unreachable upstream gets the local estimate rather than a failure
    }
  }
  const canonical = toCanonical({ ...body, max_tokens: 1 }, target?.provider.kind === 'anthropic')
  const input_tokens = countPromptTokens(canonical, encodingFor(target?.model.model ?? body.model, target?.model.encoding))
  return c.json({ input_tokens }, 200, { 'x-sluice-token-count': 'estimate' })
}
