import { runsAfterOthers, type PipelineResult, type RequestContext, type Step } from './context.js'
import { observeStream } from './stream.js'

/**
 * The one request path. Steps run in order as middleware around the last one (plan and call):
 * identify → guard input → admit → look up → guard output → plan/call; each may act before and after `next`.
 * Whatever happens, `ctx.onDone` callbacks run exactly once when the request has fully ended —
 * for streams, when the stream is drained, fails, or the client goes away (before its last event); for a JSON
 * answer, they start before it is returned and `ctx.ended` resolves when they have all run.
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
      // A stream's last event does wait for them. Sent first, it let a client's next request arrive while this
      // one's tail (the settlement's reply, the turn-end cache writes) still ran: back-to-back streams' time to first
      // byte +0.25-0.3 ms on Redis (README, Performance, twenty-third session), for -0.9 ms on the stream's whole.
      stream: observeStream(result.stream, { onEnd: ({ error, closedEarly }) => finish(ctx, error ?? (closedEarly ? new Error('client closed the stream') : undefined)) })
    }
  }
}

/**
 * Run the request's end callbacks, innermost step first; one failing does not stop the others. Each callback's async
 * part runs alongside the ones after it (on Redis the budget settlement, the session total and a rate limit's
 * correction share one write and one round trip), except that a callback made with `afterOthers` waits for those
 * started before it. Resolves when every callback has settled. Surfaces that do not go through a pipeline
 * (embeddings) call it themselves once the request has ended.
 *
 * @example
 * await finish(ctx, err)
 */
export async function finish(ctx: RequestContext, error?: unknown): Promise<void> {
  const callbacks = ctx.onDone
  ctx.onDone = []
  let pending: PromiseLike<void>[] | undefined
  for (let i = callbacks.length - 1; i >= 0; i--) {
    const callback = callbacks[i]!
    if (pending && runsAfterOthers(callback)) {
      await Promise.all(pending)
      pending = undefined
    }
    try {
      const done = callback(ctx, error)
      // most callbacks are synchronous: only a returned promise is waited for
      if (done !== undefined && typeof (done as PromiseLike<void>).then === 'function') (pending ??= []).push(Promise.resolve(done).catch(ignore))
    } catch {
      // settlement of one layer must not prevent the others
    }
  }
  if (pending) await Promise.all(pending)
}

/** A failed end callback's rejection: it must not prevent the others (as a throw does not). */
function ignore(): void {}
