import { newId } from '../src/ids.js'
import type { Context, MiddlewareHandler } from 'hono'

const KEY = 'sluiceRequestId'
export const REQUEST_ID_HEADER = 'x-sluice-request-id'

// answers built with the request id already in their header record (see `jsonAnswer`)
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
    // answer built by `jsonAnswer` is left as it is.
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
 * A JSON answer like Hono's `c.json(body, status, headers)`, built from the one header record the route made
 * (cost headers on the hot path) instead of a WHATWG Headers that node-server converts back to a record. The
 * record (lower-case names, string values) is taken over, not copied, and carries the request id, so
 * `requestIdMiddleware` leaves the answer alone.
 *
 * @example
 * return jsonAnswer(c, result.body, 200, await costHeaders(gateway, ctx))
 */
export function jsonAnswer(c: Context, body: unknown, status: number, headers: Record<string, string>): Response {
  headers['content-type'] = 'application/json'
  const id = requestIdOf(c)
  if (id !== undefined) headers[REQUEST_ID_HEADER] ??= id
  const res = new Response(JSON.stringify(body), { status, headers })
  if (id !== undefined) carriesId.add(res)
  return res
}
