import { Hono } from 'hono'
import { z } from 'zod'
import type { Gateway } from '../src/gateway.js'
import { chunksToResponseEvents, formatResponseSSE, fromResponsesRequest, newId, toResponse, type ResponsesRequest } from '../src/responses/index.js'
import { observeStream } from '../src/stream.js'
import { costHeaders } from './openai.js'
import { SSE_HEADERS, sseBody } from './sse.js'
import { requestIdOf } from './request-id.js'
import { readBody } from './validate.js'

const item = z.looseObject({ type: z.string().optional(), role: z.string().optional() })
/** The Responses request: checked where the translation relies on a field; unsupported features are named by it. */
const responsesSchema = z.looseObject({
  model: z.string().min(1).max(256),
  input: z.union([z.string(), z.array(item).min(1).max(100_000)]),
  instructions: z.string().nullable().optional(),
  tools: z.array(z.looseObject({ type: z.string(), name: z.string().optional() })).max(1024).optional(),
  max_output_tokens: z.number().int().positive().max(10_000_000).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  stream: z.boolean().nullable().optional(),
  parallel_tool_calls: z.boolean().nullable().optional(),
  user: z.string().max(512).optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional()
})

/**
 * The OpenAI Responses surface: `POST /v1/responses`, translated to chat completions for every target (stateless:
 * no stored responses, function tools only; see docs/notes/surfaces.md). Errors are OpenAI-shaped, as the API's.
 *
 * @example
 * app.route('/v1', responsesRoutes(gateway))
 */
export function responsesRoutes(gateway: Gateway) {
  const app = new Hono()

  app.post('/responses', async (c) => {
    // the key first: an unknown caller gets 401 without making the gateway read and parse its body
    const incoming = c.req.header()
    const principal = await gateway.identify(incoming)
    const body = (await readBody(c, responsesSchema)) as ResponsesRequest
    const canonical = fromResponsesRequest(body)
    const { ctx, result } = await gateway.chat({ headers: incoming, principal, body: canonical, signal: c.req.raw.signal, surface: 'responses', id: requestIdOf(c) })
    if (result.type === 'json') {
      return c.json(toResponse(result.body, body), 200, await costHeaders(gateway, ctx))
    }
    const headers: Record<string, string> = { ...SSE_HEADERS, ...ctx.responseHeaders }
    if (ctx.guardrails.length) headers['x-sluice-guardrails'] = ctx.guardrails.join(',')
    const source = result.stream[Symbol.asyncIterator]()
    const model = ctx.attempts[ctx.attempts.length - 1]?.model ?? ctx.alias
    const events = chunksToResponseEvents({ [Symbol.asyncIterator]: () => source }, body, { id: newId('resp'), model })
    // a client that leaves before the first pull must still close the pipeline's stream (settling its cost)
    const text = observeStream(events, {
      map: formatResponseSSE,
      onEnd: async ({ closedEarly }) => {
        if (closedEarly) await source.return?.()
      }
    })
    return new Response(
      sseBody(text, (s) => s, () => '', (err) => `event: error\ndata: ${JSON.stringify({ type: 'error', code: err.code ?? err.type, message: err.message, param: err.param })}\n\n`),
      { status: 200, headers }
    )
  })

  return app
}
