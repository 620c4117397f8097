/** A push-to-pull bridge: a producer pushes values, a consumer iterates them; `end` or `fail` finishes it. */
export interface Channel<T> extends AsyncIterable<T> {
  push(value: T): void
  end(): void
  fail(err: unknown): void
}

/**
 * Create a single-consumer channel. Values are held until read, so a producer never waits on the consumer.
 *
 * @example
 * const ch = createChannel<string>()
 * ch.push('a'); ch.end()
 * for await (const v of ch) console.log(v)
 */
export function createChannel<T>(onReturn?: () => void): Channel<T> {
  const values: T[] = []
  let done = false
  let error: { err: unknown } | undefined
  let wake: (() => void) | undefined
  const notify = () => { wake?.(); wake = undefined }

  async function* iterate(): AsyncGenerator<T> {
    try {
      while (true) {
        if (values.length > 0) { yield values.shift()!; continue }
        if (error) throw error.err
        if (done) return
        await new Promise<void>((r) => { wake = r })
      }
    } finally {
      // The consumer stopped early (break, return, throw): let the producer stop too.
      if (!done && !error) onReturn?.()
    }
  }

  return {
    push(value) { if (!done && !error) { values.push(value); notify() } },
    end() { done = true; notify() },
    fail(err) { if (!done) error = { err }; notify() },
    [Symbol.asyncIterator]: iterate
  }
}
