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

  const iterator: AsyncIterator<U> = {
    async next(): Promise<IteratorResult<U>> {
      if (ended && !tail?.length) return { done: true, value: undefined }
      if (tail) return { done: false, value: tail.shift()! }
      it ??= source[Symbol.asyncIterator]()
      for (;;) {
        let r: IteratorResult<T>
        try {
          r = await it.next()
        } catch (error) {
          await end({ error, closedEarly: false })
          throw error
        }
        if (r.done) {
          tail = hooks.flush ? await hooks.flush() : []
          await end({ closedEarly: false })
          if (tail.length) return { done: false, value: tail.shift()! }
          return { done: true, value: undefined }
        }
        const mapped = hooks.map ? await hooks.map(r.value) : (r.value as unknown as U)
        if (mapped !== undefined) return { done: false, value: mapped }
      }
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
