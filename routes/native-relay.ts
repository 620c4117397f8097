import type { RequestContext } from '../src/context.js'
import { GatewayError, toGatewayError } from '../src/errors.js'
import { hasNativeAnswer, nativeAnswer, type NativeFormat } from '../src/providers/native.js'
import { observeStream } from '../src/stream.js'
import type { ChatChunk } from '../src/types.js'

/** One upstream SSE event as received, relayed as sent. */
interface RawEvent {
  event: string
  data: string
}

export interface NativeRelayOptions {
  /** The surface's wire format: only native answers of this format are relayed. */
  format: NativeFormat
  /** False when the canonical (guarded) chunks must be what the client gets, native answers or not. */
  relayNative: boolean
  /** The surface's own events rebuilt from canonical chunks, as SSE text. */
  rebuild: (chunks: AsyncIterable<ChatChunk>) => AsyncIterable<string>
  /** The surface's SSE error event. */
  errorEvent: (err: GatewayError) => string
}

/**
 * Canonical chunks → a native surface's SSE text. When the first chunk carries the upstream's own events (a target
 * reached through the native pass-through) and `relayNative` allows, those events are relayed as sent; otherwise
 * `rebuild` renders the canonical chunks. Failures become the surface's error event.
 *
 * @example
 * const text = nativeRelayStream(result.stream, { format: 'anthropic', relayNative: !ctx.policy.guardrails, rebuild, errorEvent })
 */
export function nativeRelayStream(stream: AsyncIterable<ChatChunk>, opts: NativeRelayOptions): AsyncIterable<string> {
  const source = stream[Symbol.asyncIterator]()
  async function* render(): AsyncGenerator<string> {
    let first: IteratorResult<ChatChunk>
    try {
      first = await source.next()
    } catch (err) {
      yield opts.errorEvent(toGatewayError(err))
      return
    }
    // the first chunk decides the mode; then it is read again as part of the stream
    let pending: IteratorResult<ChatChunk> | undefined = first
    const rest: AsyncIterable<ChatChunk> = {
      [Symbol.asyncIterator]: () => ({
        next: async () => {
          const r = pending ?? (await source.next())
          pending = undefined
          return r
        },
        return: async () => (await source.return?.()) ?? { done: true, value: undefined }
      })
    }
    if (!first.done && opts.relayNative && hasNativeAnswer(first.value)) {
      try {
        for await (const chunk of rest) {
          const events = nativeAnswer<RawEvent[]>(chunk, opts.format)
          // fail closed: a chunk changed after the upstream sent it must not be relayed as the upstream's bytes
          if (!events) throw new GatewayError(500, 'The answer was changed inside the gateway after the upstream stream began.', { code: 'stream_changed' })
          for (const e of events) yield `event: ${e.event}\ndata: ${e.data}\n\n`
        }
      } catch (err) {
        yield opts.errorEvent(toGatewayError(err))
      }
      return
    }
    yield* opts.rebuild(rest)
  }
  // a client that leaves before the first pull must still close the pipeline's stream (settling its cost)
  return observeStream(render(), {
    onEnd: async ({ closedEarly }) => {
      if (closedEarly) await source.return?.()
    }
  })
}

/** The model of the last attempt (the one that answered), or the requested alias before any attempt. */
export function lastModel(ctx: RequestContext): string {
  return ctx.attempts[ctx.attempts.length - 1]?.model ?? ctx.alias
}
