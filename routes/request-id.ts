import type { Context } from 'hono'

/** Where `withArrival` (routes/arrival.ts) keeps the request's id: on the env object the request is served with. */
export const REQUEST_ID_KEY = 'sluiceRequestId'
export const REQUEST_ID_HEADER = 'x-sluice-request-id'

// answers built with the request id already in their header record (see `jsonAnswer`)
const carriesId = new WeakSet<Response>()

/**
 * Send the request's id as `x-sluice-request-id` on an answer, whatever built it (errors included: 401, 413,
 * 429, 5xx, unknown routes), so a failed call can be matched with its ledger entry and logs. Reading an answer's
 * headers would turn node-server's plain header record into a WHATWG Headers (and back again on the way out),
 * so an answer built by `jsonAnswer` is returned as it is; a relayed fetch Response (immutable headers) is copied.
 *
 * @example
 * return stampRequestId(await app.fetch(req, env), env.sluiceRequestId)
 */
export function stampRequestId(res: Response, id: string): Response {
  if (carriesId.has(res)) return res
  try {
    if (!res.headers.has(REQUEST_ID_HEADER)) res.headers.set(REQUEST_ID_HEADER, id)
    return res
  } catch {
    const copy = new Response(res.body, res)
    copy.headers.set(REQUEST_ID_HEADER, id)
    return copy
  }
}

/**
 * Mark an answer whose head carries the request id already, or is never sent (a route that wrote its response to
 * Node itself), so `stampRequestId` returns it untouched.
 *
 * @example
 * return sentWithRequestId(marker)
 */
export function sentWithRequestId(res: Response): Response {
  carriesId.add(res)
  return res
}

/**
 * The id this request was given at arrival (`withArrival`); the gateway uses it for the request's context
 * (`ctx.id`, the ledger's `request_id`). Undefined where the app is called without `withArrival`.
 *
 * @example
 * gateway.chat({ id: requestIdOf(c), ... })
 */
export function requestIdOf(c: Context): string | undefined {
  return (c.env as Record<string, unknown> | undefined)?.[REQUEST_ID_KEY] as string | undefined
}

/**
 * A JSON answer like Hono's `c.json(body, status, headers)`, built from the one header record the route made
 * (cost headers on the hot path) instead of a WHATWG Headers that node-server converts back to a record. The
 * record (lower-case names, string values) is taken over, not copied, and carries the request id, so
 * `stampRequestId` leaves the answer alone.
 *
 * @example
 * return jsonAnswer(c, result.body, 200, await costHeaders(gateway, ctx))
 */
export function jsonAnswer(c: Context, body: unknown, status: number, headers: Record<string, string>): Response {
  headers['content-type'] = 'application/json'
  const id = requestIdOf(c)
  if (id !== undefined) headers[REQUEST_ID_HEADER] ??= id
  const res = new Response(JSON.stringify(body), { status, headers })
  return id !== undefined ? sentWithRequestId(res) : res
}
