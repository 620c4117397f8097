import { Hono } from 'hono'
import type { RequestContext } from '../src/context.js'
import { round } from '../src/providers/call.js'
import type { Gateway } from '../src/gateway.js'
import type { ChatChunk } from '../src/types.js'
import { requestAbort, requestHeaders } from './incoming.js'
import { jsonAnswer, requestIdOf } from './request-id.js'
import { sseResponse, streamHeaders } from './sse.js'
import { chatRequestSchema, embeddingRequestSchema, readBody } from './validate.js'

/**
 * The OpenAI-compatible surface: `/v1/chat/completions`, `/v1/embeddings`, `/v1/models`.
 * Wire format only: parse, hand the canonical request to the gateway, render JSON or SSE.
 *
 * @example
 * app.route('/v1', openaiRoutes(gateway))
 */
export function openaiRoutes(gateway: Gateway) {
  const app = new Hono()

  app.post('/chat/completions', async (c) => {
    // the key first: an unknown caller gets 401 without making the gateway read and parse its body
    const incoming = requestHeaders(c)
    const principal = await gateway.identify(incoming)
    const body = await readBody(c, chatRequestSchema)
    const { ctx, result } = await gateway.chat({ headers: incoming, principal, body, ...requestAbort(c), surface: 'chat', id: requestIdOf(c) })
    if (result.type === 'json') {
      return jsonAnswer(c, result.body, 200, await costHeaders(gateway, ctx))
    }
    return sseResponse(
      c,
      result.stream,
      {
        render: (chunk: ChatChunk) => {
          if (chunk.usage && !ctx.wantsUsage) {
            // we asked the upstream for usage; the client did not
            if (chunk.choices.length === 0) return undefined
            const { usage: _usage, ...rest } = chunk
            return `data: ${JSON.stringify(rest)}\n\n`
          }
          return `data: ${JSON.stringify(chunk)}\n\n`
        },
        end: () => 'data: [DONE]\n\n',
        renderError: (err) => `data: ${JSON.stringify(err.toJSON())}\n\n`
      },
      streamHeaders(ctx)
    )
  })

  app.post('/embeddings', async (c) => {
    const headers = requestHeaders(c)
    const principal = await gateway.identify(headers)
    const body = await readBody(c, embeddingRequestSchema)
    const res = await gateway.embeddings({ headers, principal, body, ...requestAbort(c), id: requestIdOf(c) })
    return jsonAnswer(c, res.body, 200, await costHeaders(gateway, res.ctx))
  })

  app.get('/models', async (c) => {
    const principal = await gateway.identify(c.req.header())
    const created = Math.floor(Date.now() / 1000)
    return c.json({
      object: 'list',
      data: gateway.models(principal).map((m) => ({
        id: m.id,
        object: 'model',
        created,
        owned_by: m.provider,
        ...(m.unavailable ? { sluice_available: false, sluice_unavailable_reason: m.unavailable } : {})
      }))
    })
  })

  return app
}

/** Response headers for a finished non-streamed request: request id, cost, and the session's running total. */
export async function costHeaders(gateway: Gateway, ctx: RequestContext): Promise<Record<string, string>> {
  // the session's running total comes from an end callback, which a JSON answer does not otherwise wait for
  if (ctx.session && ctx.ended) await ctx.ended
  // Object.assign, not a spread: V8 copies a record of hyphenated header names about 6× slower through `{ ...x }`
  const headers: Record<string, string> = Object.assign({}, ctx.responseHeaders)
  headers['x-sluice-cost-usd'] = String(round(ctx.costUsd))
  if (ctx.guardrails.length) headers['x-sluice-guardrails'] = ctx.guardrails.join(',')
  if (typeof ctx.state.sessionCostUsd === 'number') headers['x-sluice-session-cost-usd'] = String(round(ctx.state.sessionCostUsd))
  else if (ctx.session) {
    try {
      headers['x-sluice-session-cost-usd'] = String(round(await gateway.ledger.sessionCost(ctx.principal.team, ctx.session)))
    } catch {
      // the store being away must not fail an answered request
    }
  }
  return headers
}
