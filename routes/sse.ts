import type { ServerResponse } from 'node:http'
import type { Context } from 'hono'
import type { RequestContext } from '../src/context.js'
import type { GatewayError } from '../src/errors.js'
import { toGatewayError } from '../src/errors.js'
import { REQUEST_ID_HEADER, requestIdOf, sentWithRequestId } from './request-id.js'

const encoder = new TextEncoder()

/** How one surface writes its stream: each item as text (undefined: skip it), the end, a failure mid-stream. */
export interface SseFormat<T> {
  render: (item: T) => string | undefined
  end: () => string
  renderError: (err: GatewayError) => string
}

/**
 * An SSE response body pulled from an async iterable: each item is written as soon as it arrives (never
 * buffered), a failure mid-stream becomes a final error event, and a client that goes away closes the
 * iterator (which aborts the upstream call and settles its cost). `sseResponse` uses it where there is no
 * Node response to write to.
 *
 * @example
 * return new Response(sseBody(chunks, { render: (c) => `data: ${JSON.stringify(c)}\n\n`, end: () => 'data: [DONE]\n\n', renderError }), { headers })
 */
export function sseBody<T>(source: AsyncIterable<T>, { render, end, renderError }: SseFormat<T>): ReadableStream<Uint8Array> {
  const it = source[Symbol.asyncIterator]()
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        for (;;) {
          const r = await it.next()
          if (r.done) {
            controller.enqueue(encoder.encode(end()))
            controller.close()
            return
          }
          const text = render(r.value)
          if (text) {
            controller.enqueue(encoder.encode(text))
            return
          }
        }
      } catch (err) {
        controller.enqueue(encoder.encode(renderError(toGatewayError(err))))
        controller.close()
      }
    },
    async cancel() {
      await it.return?.()
    }
  })
}

/** node-server's marker for a response the handler wrote to Node itself (its `RESPONSE_ALREADY_SENT`). */
const ALREADY_SENT = 'x-hono-already-sent'

let alreadySent: Response | undefined

/**
 * The answer a route returns once it has written its response to Node itself: one per process, as node-server's own
 * `RESPONSE_ALREADY_SENT`. Its headers are read once here: node-server's lightweight Response (the global one once
 * it serves) would otherwise be written as a second head, and reading them later, per request, built a WHATWG
 * Response on the stream's way to its first event (~70 µs on a cold CPU, after the upstream's headers). It carries
 * no request id: `stampRequestId` leaves it alone, the id went out in the head `writeSse` wrote.
 *
 * @example
 * writeSse(outgoing, it, format, head)
 * return alreadySentAnswer()
 */
export function alreadySentAnswer(): Response {
  if (alreadySent) return alreadySent
  const res = new Response(null, { headers: { [ALREADY_SENT]: 'true' } })
  res.headers.get(ALREADY_SENT)
  alreadySent = sentWithRequestId(res)
  return alreadySent
}

/**
 * The streamed answer of a route. Served by @hono/node-server, it is written to Node's response directly: the
 * status and headers go out together with the first event, in one write. Through a web stream body node-server
 * flushes the headers alone and writes the first event on a later turn: the first event left 0.36–0.47 ms
 * later (sequential streams, bench fake, 2-core VM), and the client was woken for a packet without a byte of
 * the answer. Streamed misses also cost 8–30 % less CPU without the web stream between the events and Node.
 * Elsewhere (`app.request` in tests, other runtimes) it is a `Response` over `sseBody`. Either way each event
 * is written as soon as it arrives, a failure mid-stream becomes a final error event, and a client that goes
 * away closes the source (which aborts the upstream call and settles its cost).
 *
 * @example
 * return sseResponse(c, chunks, { render: (x) => `data: ${JSON.stringify(x)}\n\n`, end: () => 'data: [DONE]\n\n', renderError }, streamHeaders(ctx))
 */
export function sseResponse<T>(c: Context, source: AsyncIterable<T>, format: SseFormat<T>, headers: Record<string, string>): Response {
  const outgoing = (c.env as { outgoing?: ServerResponse } | undefined)?.outgoing
  if (!outgoing || outgoing.headersSent) return new Response(sseBody(source, format), { status: 200, headers })
  const id = requestIdOf(c)
  // the answer returned below is never sent: the id goes out in this head
  const head = id === undefined || headers[REQUEST_ID_HEADER] ? headers : Object.assign({}, headers, { [REQUEST_ID_HEADER]: id })
  const it = source[Symbol.asyncIterator]()
  writeSse(outgoing, it, format, head).catch(() => {
    // only a header Node refused gets here: drop the connection and stop the source
    outgoing.destroy()
    void it.return?.()?.catch(() => {})
  })
  return alreadySentAnswer()
}

/** Pumps the events into Node's response, waiting for `drain` when the client reads slower than they come. */
async function writeSse<T>(out: ServerResponse, it: AsyncIterator<T>, format: SseFormat<T>, headers: Record<string, string>): Promise<void> {
  let closed = false
  const onClose = () => {
    closed = true
    // the client left before the end: stop the source (cancel() of the web stream does the same)
    if (!out.writableFinished) void it.return?.()?.catch(() => {})
  }
  out.once('close', onClose)
  const start = () => {
    if (!out.headersSent) out.writeHead(200, headers)
  }
  // Events after the first that arrive together (one upstream read pulls many through the steps in one burst of
  // microtasks) are joined into one `write` at the end of the tick, when the loop has to wait for more: the same
  // moment Node's own per-tick cork would send them, with one write call and one buffer instead of one per event
  // (a 500-event stream: ~15 % of its CPU went to Node's per-write path and the kernel's per-segment work).
  let batch = ''
  let flushing = false
  const flush = () => {
    flushing = false
    if (batch === '' || closed || out.destroyed) return
    const text = batch
    batch = ''
    // a full buffer shows as writableNeedDrain (set here, cleared by the drain event), which the loop checks
    out.write(text)
  }
  /** Ends the response with what is still batched and then `last`. */
  const end = (last: string) => {
    start()
    const rest = batch
    batch = ''
    out.end(rest + last)
  }
  try {
    for (;;) {
      const r = await it.next()
      if (closed || out.destroyed) return
      if (r.done) {
        end(format.end())
        return
      }
      const text = format.render(r.value)
      if (!text) continue
      if (out.headersSent) {
        batch += text
        if (!flushing) {
          flushing = true
          process.nextTick(flush)
        }
        if (out.writableNeedDrain) await drained(out)
        continue
      }
      start()
      const flowing = out.write(text)
      // Node corks the socket at a response's first write and lifts the cork on the next tick; by then this loop
      // has pulled the next event through every stream step, and other queued work has run. The head and the first
      // event leave now (corked 64–88 µs before, 6–8 after, on sequential streams: bench/ttfb-phases.ts).
      out.socket?.uncork()
      if (!flowing) await drained(out)
    }
  } catch (err) {
    if (closed || out.destroyed) return
    end(format.renderError(toGatewayError(err)))
  } finally {
    out.off('close', onClose)
  }
}

/** Resolves on `drain`, or on `close` (the loop then sees the client gone). */
function drained(out: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off('drain', done)
      out.off('close', done)
      resolve()
    }
    out.once('drain', done)
    out.once('close', done)
  })
}

export const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' }

/**
 * Response headers for a streamed answer: SSE, the pipeline's own headers, and the guardrail actions known before
 * the first byte (cost is not known yet; it is in the ledger when the stream ends).
 *
 * @example
 * return sseResponse(c, chunks, format, streamHeaders(ctx))
 */
export function streamHeaders(ctx: RequestContext): Record<string, string> {
  // Object.assign, not spreads: V8 copies records of hyphenated header names about 6× slower through `{ ...x }`
  const headers: Record<string, string> = Object.assign({}, SSE_HEADERS, ctx.responseHeaders)
  if (ctx.guardrails.length) headers['x-sluice-guardrails'] = ctx.guardrails.join(',')
  return headers
}
