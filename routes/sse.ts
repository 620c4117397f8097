import type { RequestContext } from '../src/context.js'
import type { GatewayError } from '../src/errors.js'
import { toGatewayError } from '../src/errors.js'

const encoder = new TextEncoder()

/**
 * An SSE response body pulled from an async iterable: each item is written as soon as it arrives (never
 * buffered), a failure mid-stream becomes a final error event, and a client that goes away closes the
 * iterator (which aborts the upstream call and settles its cost).
 *
 * @example
 * return new Response(sseBody(chunks, (c) => `data: ${JSON.stringify(c)}\n\n`, () => 'data: [DONE]\n\n', errorEvent), { headers })
 */
export function sseBody<T>(
  source: AsyncIterable<T>,
  render: (item: T) => string | undefined,
  end: () => string,
  renderError: (err: GatewayError) => string
): ReadableStream<Uint8Array> {
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

export const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' }

/**
 * Response headers for a streamed answer: SSE, the pipeline's own headers, and the guardrail actions known before
 * the first byte (cost is not known yet; it is in the ledger when the stream ends).
 *
 * @example
 * return new Response(sseBody(...), { status: 200, headers: streamHeaders(ctx) })
 */
export function streamHeaders(ctx: RequestContext): Record<string, string> {
  const headers: Record<string, string> = { ...SSE_HEADERS, ...ctx.responseHeaders }
  if (ctx.guardrails.length) headers['x-sluice-guardrails'] = ctx.guardrails.join(',')
  return headers
}
