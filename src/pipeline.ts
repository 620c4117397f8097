import type { PipelineResult, RequestContext, Step } from './context.js'
import { observeStream } from './stream.js'

/**
 * The one request path. Steps run in order as middleware around the last one (plan and call):
 * identify → guard input → admit → look up → guard output → plan/call; each may act before and after `next`.
 * Whatever happens, `ctx.onDone` callbacks run exactly once when the request has fully ended —
 * for streams, when the stream is drained, fails, or the client goes away. Nothing the client gets waits for them:
 * they start before a JSON answer is returned, or as a stream ends, and `ctx.ended` resolves when they have all run.
 *
 * @example
 * const run = createPipeline([guardInput, admit, cache, guardOutput, route])
 * const result = await run(ctx)
 */
export function createPipeline(steps: Step[]): (ctx: RequestContext) => Promise<PipelineResult> {
  const dispatch = (ctx: RequestContext, i: number): Promise<PipelineResult> => {
    const step = steps[i]
    if (!step) return Promise.reject(new Error('pipeline has no terminal step'))
    return step(ctx, () => dispatch(ctx, i + 1))
  }

  return async (ctx) => {
    let result: PipelineResult
    try {
      result = await dispatch(ctx, 0)
    } catch (err) {
      await finish(ctx, err)
      throw err
    }
    if (result.type === 'json') {
      // The answer does not wait for the end callbacks' store round trips (on Redis, the budget settlement is one):
      // the reservation holds the worst case until it is replaced, and the request stays in flight (shutdown
      // drains it) until the last callback has run. Their synchronous parts (the ledger entry) run before this
      // returns.
      ctx.ended = finish(ctx)
      return result
    }
    return {
      type: 'stream',
      // the same for a stream's end: its last event does not wait for the settlement either
      stream: observeStream(result.stream, {
        onEnd: ({ error, closedEarly }) => {
          ctx.ended = finish(ctx, error ?? (closedEarly ? new Error('client closed the stream') : undefined))
        }
      })
    }
  }
}

/**
 * Run the request's end callbacks, innermost step first; one failing does not stop the others. Surfaces that
 * do not go through a pipeline (embeddings) call it themselves once the request has ended.
 *
 * @example
 * await finish(ctx, err)
 */
export async function finish(ctx: RequestContext, error?: unknown): Promise<void> {
  const callbacks = ctx.onDone
  ctx.onDone = []
  for (let i = callbacks.length - 1; i >= 0; i--) {
    try {
      const done = callbacks[i]!(ctx, error)
      // most callbacks are synchronous: awaiting their undefined would still cost a turn of the microtask queue each
      if (done !== undefined && typeof (done as PromiseLike<void>).then === 'function') await done
    } catch {
      // settlement of one layer must not prevent the others
    }
  }
}
