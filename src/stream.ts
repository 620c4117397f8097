/**
 * Wrap an async iterable so that `onEnd` runs exactly once however the stream ends: drained, failed, or
 * closed early by the consumer (client disconnect) — even if the consumer closes before the first pull,
 * where an async generator's `finally` would never run.
 *
 * `map` may transform each item, or return undefined to drop it. Items are never buffered.
 *
 * @example
 * const metered = observeStream(chunks, { map: (c) => { seen(c); return c }, onEnd: (err) => settle(err) })
 */
export function observeStream<T, U = T>(
  source: AsyncIterable<T>,
  hooks: {
    map?: (item: T) => U | undefined | Promise<U | undefined>
    /** Items to emit after the source is drained (e.g. held-back text). */
    flush?: () => U[] | Promise<U[]>
    /** `error` is set when the source failed; `closedEarly` when the consumer stopped before the end. */
    onEnd: (info: { error?: unknown; closedEarly: boolean }) => void | Promise<void>
  }
): AsyncIterable<U> {
  let it: AsyncIterator<T> | undefined
  let ended = false
  let tail: U[] | undefined

  const end = async (info: { error?: unknown; closedEarly: boolean }) => {
    if (ended) return
    ended = true
    await hooks.onEnd(info)
  }

  const failed = async (error: unknown): Promise<never> => {
    await end({ error, closedEarly: false })
    throw error
  }
  const drained = async (): Promise<IteratorResult<U>> => {
    tail = hooks.flush ? await hooks.flush() : []
    await end({ closedEarly: false })
    if (tail.length) return { done: false, value: tail.shift()! }
    return { done: true, value: undefined }
  }
  const mapped = (value: U | undefined): IteratorResult<U> | Promise<IteratorResult<U>> => (value !== undefined ? { done: false, value } : pull())
  const item = (r: IteratorResult<T>): IteratorResult<U> | Promise<IteratorResult<U>> => {
    if (r.done) return drained()
    // the source's own result when nothing maps it
    if (!hooks.map) return r as unknown as IteratorResult<U>
    const m = hooks.map(r.value)
    return isThenable(m) ? m.then(mapped) : mapped(m)
  }
  // Chained with then, not written as an async function awaiting each step: every chunk of a stream passes through
  // several of these wrappers, and each await is a microtask hop and a promise more per chunk (a 500-chunk stream:
  // README, Performance, "What moved in the twenty-fifth session").
  const pull = (): Promise<IteratorResult<U>> => {
    let next: Promise<IteratorResult<T>>
    try {
      it ??= source[Symbol.asyncIterator]()
      next = it.next()
    } catch (error) {
      return failed(error)
    }
    return next.then(item, failed)
  }

  const iterator: AsyncIterator<U> = {
    next(): Promise<IteratorResult<U>> {
      if (ended && !tail?.length) return Promise.resolve({ done: true, value: undefined })
      if (tail) return Promise.resolve({ done: false, value: tail.shift()! })
      return pull()
    },
    async return(): Promise<IteratorResult<U>> {
      const wasEnded = ended
      tail = undefined
      await end({ closedEarly: !wasEnded })
      try {
        // close the source even if it was never pulled: a wrapped stream (e.g. a metered provider call)
        // must still run its own end hook
        it ??= source[Symbol.asyncIterator]()
        await it.return?.()
      } catch {
        // the source is being abandoned; its close error is not the consumer's concern
      }
      return { done: true, value: undefined }
    }
  }
  return { [Symbol.asyncIterator]: () => iterator }
}

function isThenable<T>(x: T | Promise<T>): x is Promise<T> {
  return typeof (x as { then?: unknown } | undefined)?.then === 'function'
}
