import { Hono } from 'hono'
import type { GatewayError } from '../src/errors.js'
import type { Gateway } from '../src/gateway.js'
import { NATIVE_REQUEST_KEY, nativeAnswer, requestFingerprint, type NativeRequest } from '../src/providers/native.js'
import type { OpenAIProvider } from '../src/providers/openai/index.js'
import {
  chunksToResponseEvents,
  formatResponseSSE,
  fromResponsesPassThrough,
  fromResponsesRequest,
  newId,
  toResponse,
  type ResponseObject,
  type ResponsesRequest
} from '../src/responses/index.js'
import type { ChatChunk, ChatRequest } from '../src/types.js'
import { requestAbort, requestHeaders } from './incoming.js'
import { lastModel, nativeRelayStream } from './native-relay.js'
import { costHeaders } from './openai.js'
import { sseResponse, streamHeaders } from './sse.js'
import { jsonAnswer, requestIdOf } from './request-id.js'
import { bodySchema, readBody } from './validate.js'

const item = { type: 'object', properties: { type: { type: 'string' }, role: { type: 'string' } } }
/** The Responses request: checked where the translation relies on a field; unsupported features are named by it. */
const responsesSchema = bodySchema<ResponsesRequest>({
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: { type: 'string', minLength: 1, maxLength: 256 },
    input: { type: ['string', 'array'], minItems: 1, maxItems: 100_000, items: item },
    instructions: { type: ['string', 'null'] },
    tools: { type: 'array', maxItems: 1024, items: { type: 'object', required: ['type'], properties: { type: { type: 'string' }, name: { type: 'string' } } } },
    max_output_tokens: { type: ['integer', 'null'], exclusiveMinimum: 0, maximum: 10_000_000 },
    temperature: { type: ['number', 'null'], minimum: 0, maximum: 2 },
    top_p: { type: ['number', 'null'], minimum: 0, maximum: 1 },
    stream: { type: ['boolean', 'null'] },
    parallel_tool_calls: { type: ['boolean', 'null'] },
    user: { type: 'string', maxLength: 512 },
    metadata: { type: ['object', 'null'], additionalProperties: { type: 'string' } }
  }
})

/**
 * The OpenAI Responses surface: `POST /v1/responses`. For an OpenAI target the client's body goes to the upstream's
 * `/responses` as sent (model replaced) and its answer comes back as sent, usage settled in the ledger; other
 * targets get a translation to chat completions (stateless, function tools only). The pipeline works on the
 * canonical view either way. See README, Inbound surfaces. Errors are OpenAI-shaped, as the API's.
 *
 * @example
 * app.route('/v1', responsesRoutes(gateway))
 */
export function responsesRoutes(gateway: Gateway) {
  const app = new Hono()

  app.post('/responses', async (c) => {
    // the key first: an unknown caller gets 401 without making the gateway read and parse its body
    const incoming = requestHeaders(c)
    const principal = await gateway.identify(incoming)
    const body = await readBody(c, responsesSchema)
    let headers = incoming
    let canonical: ChatRequest
    let state: Record<string, unknown> | undefined
    if (passesThrough(gateway, body.model)) {
      const { request, lossy } = fromResponsesPassThrough(body)
      canonical = request
      const native: NativeRequest = { format: 'responses', body, fingerprint: requestFingerprint(request), lossy }
      state = { [NATIVE_REQUEST_KEY]: native }
      // the cache keeps canonical answers, which cannot replay custom tool calls or upstream state
      if (lossy) headers = { ...incoming, 'x-sluice-cache': 'bypass' }
    } else canonical = fromResponsesRequest(body)
    const { ctx, result } = await gateway.chat({ headers, principal, body: canonical, ...requestAbort(c), surface: 'responses', id: requestIdOf(c), state })
    if (result.type === 'json') {
      const response = nativeAnswer<ResponseObject>(result.body, 'responses') ?? toResponse(result.body, body)
      return jsonAnswer(c, response, 200, await costHeaders(gateway, ctx))
    }
    // with guardrails on, the canonical (guarded) chunks are what the client gets, as on /v1/messages
    const text = responseEventStream(result.stream, body, { relayNative: !ctx.policy.guardrails, model: lastModel(ctx) })
    return sseResponse(c, text, { render: (s) => s, end: () => '', renderError: errorEvent }, streamHeaders(ctx))
  })

  return app
}

/** Whether the alias's target takes the Responses body as sent: an OpenAI provider that speaks the Responses API. */
function passesThrough(gateway: Gateway, alias: string): boolean {
  const provider = gateway.runtime.targets.get(alias)?.provider
  return provider?.kind === 'openai' && (provider as OpenAIProvider).responsesApi !== false
}

function errorEvent(err: GatewayError): string {
  return `event: error\ndata: ${JSON.stringify({ type: 'error', code: err.code ?? err.type, message: err.message, param: err.param })}\n\n`
}

/**
 * Canonical chunks → Responses SSE text. When the first chunk carries the upstream's own events (an OpenAI target
 * reached through the pass-through) and `relayNative` allows, those are relayed as sent: reasoning items, custom
 * tool calls and the upstream's ids survive. Otherwise the events are rebuilt from the canonical chunks.
 */
function responseEventStream(stream: AsyncIterable<ChatChunk>, body: ResponsesRequest, opts: { relayNative: boolean; model: string }): AsyncIterable<string> {
  return nativeRelayStream(stream, {
    format: 'responses',
    relayNative: opts.relayNative,
    errorEvent,
    rebuild: async function* (chunks) {
      for await (const ev of chunksToResponseEvents(chunks, body, { id: newId('resp'), model: opts.model })) yield formatResponseSSE(ev)
    }
  })
}
