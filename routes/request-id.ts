import { newId } from '../src/ids.js'
import type { Context, MiddlewareHandler } from 'hono'

const KEY = 'sluiceRequestId'
export const REQUEST_ID_HEADER = 'x-sluice-request-id'

// answers a route built with the id already in their header record (see `answerWithId`)
const carriesId = new WeakSet<Response>()

/**
 * Give every request an id at arrival and send it as `x-sluice-request-id` on every response, errors included
 * (401, 413, 429, 5xx, unknown routes), so a failed call can be matched with its ledger entry and logs. The
 * gateway uses the same id for the request's context (`ctx.id`, the ledger's `request_id`).
 *
 * @example
 * app.use('*', requestIdMiddleware())
 * gateway.chat({ id: requestIdOf(c), ... })
 */
export function requestIdMiddleware(): MiddlewareHandler {
  return async function requestId(c, next) {
    const id = newId()
    c.set(KEY as never, id as never)
    await next()
    // error handlers and notFound ran inside next(): c.res is whatever answer goes out. Reading its headers
    // would turn node-server's plain header record into a WHATWG Headers (and back again on the way out), so an
    // answer built by `answerWithId` is left as it is.
    if (carriesId.has(c.res)) return
    try {
      if (!c.res.headers.has(REQUEST_ID_HEADER)) c.res.headers.set(REQUEST_ID_HEADER, id)
    } catch {
      // immutable headers (a relayed fetch Response): copy it
      const res = new Response(c.res.body, c.res)
      res.headers.set(REQUEST_ID_HEADER, id)
      c.res = res
    }
  }
}

/** The id `requestIdMiddleware` gave this request; undefined where the middleware is not mounted. */
export function requestIdOf(c: Context): string | undefined {
  return (c.get as (key: string) => unknown)(KEY) as string | undefined
}

/**
 * A response whose header record already carries the request id, so `requestIdMiddleware` need not touch it.
 * The record goes to node-server as it is (lower-case names, string values): no WHATWG Headers is built for it.
 *
 * @example
 * return answerWithId(c, JSON.stringify(body), 200, { 'content-type': 'application/json', 'x-sluice-cost-usd': '0.0001' })
 */
export function answerWithId(c: Context, body: string, status: number, headers: Record<string, string>): Response {
  const id = requestIdOf(c)
  if (id === undefined) return new Response(body, { status, headers })
  headers[REQUEST_ID_HEADER] ??= id
  const res = new Response(body, { status, headers })
  carriesId.add(res)
  return res
}

/**
 * A JSON answer like Hono's `c.json(body, status, headers)`, built from the one header record the route made
 * (cost headers on the hot path) instead of a WHATWG Headers that node-server converts back to a record.
 * The record is taken over, not copied.
 *
 * @example
 * return jsonAnswer(c, result.body, 200, await costHeaders(gateway, ctx))
 */
export function jsonAnswer(c: Context, body: unknown, status: number, headers: Record<string, string>): Response {
  headers['content-type'] = 'application/json'
  return answerWithId(c, JSON.stringify(body), status, headers)
}
