import type { ChatChunk, ChatCompletion } from '../types.js'

/**
 * Re-emit a complete answer as stream chunks (role, content, tool calls, finish, then a usage chunk), so a
 * cascade tier judged whole can still be streamed to a client that asked for a stream. Content is cut into
 * pieces of a few words, like an upstream would send it.
 *
 * @example
 * for (const chunk of completionToChunks(body)) send(chunk)
 */
export function completionToChunks(body: ChatCompletion, opts: { model?: string; includeLogprobs?: boolean } = {}): ChatChunk[] {
  const base = { id: body.id, object: 'chat.completion.chunk' as const, created: body.created, model: opts.model ?? body.model }
  const out: ChatChunk[] = []
  for (const choice of body.choices) {
    const index = choice.index
    const msg = choice.message
    out.push({ ...base, choices: [{ index, delta: { role: 'assistant', content: '' }, finish_reason: null }] })
    const lps = opts.includeLogprobs ? choice.logprobs?.content ?? null : null
    if (typeof msg.content === 'string' && msg.content) {
      if (lps && lps.length) {
        // one chunk per token keeps content and logprobs aligned
        const joined = lps.map((t) => t.token).join('')
        if (joined === msg.content) {
          for (const t of lps) out.push({ ...base, choices: [{ index, delta: { content: t.token }, logprobs: { content: [t] }, finish_reason: null }] })
        } else out.push({ ...base, choices: [{ index, delta: { content: msg.content }, logprobs: { content: lps }, finish_reason: null }] })
      } else {
        for (const piece of msg.content.match(/\S*\s*/g)?.filter(Boolean) ?? [msg.content]) {
          out.push({ ...base, choices: [{ index, delta: { content: piece }, finish_reason: null }] })
        }
      }
    }
    if (typeof msg.refusal === 'string' && msg.refusal) out.push({ ...base, choices: [{ index, delta: { refusal: msg.refusal }, finish_reason: null }] })
    msg.tool_calls?.forEach((tc, i) => {
      out.push({ ...base, choices: [{ index, delta: { tool_calls: [{ index: i, id: tc.id, type: 'function', function: { name: tc.function.name, arguments: '' } }] }, finish_reason: null }] })
      if (tc.function.arguments) out.push({ ...base, choices: [{ index, delta: { tool_calls: [{ index: i, function: { arguments: tc.function.arguments } }] }, finish_reason: null }] })
    })
    out.push({ ...base, choices: [{ index, delta: {}, finish_reason: choice.finish_reason ?? 'stop' }] })
  }
  if (body.usage) out.push({ ...base, choices: [], usage: body.usage })
  return out
}

/** An async iterable over a fixed list. */
export async function* fromArray<T>(items: T[]): AsyncGenerator<T> {
  for (const item of items) yield item
}

/**
 * Pull the first item of a stream before committing to it: a stream that fails before its first chunk
 * rejects here (so the route can still fall back), one that has started is returned whole, first item
 * included. `close` ends the source even if the consumer never pulls (a client that left in between).
 *
 * @example
 * const { stream, close } = await peekStream(source)
 */
export async function peekStream<T>(source: AsyncIterable<T>): Promise<{ stream: AsyncIterable<T>; close: () => Promise<void> }> {
  const it = source[Symbol.asyncIterator]()
  const first = await it.next()
  let pending: IteratorResult<T> | undefined = first
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    pending = undefined
    try {
      await it.return?.()
    } catch {
      // abandoning the source; its close error is not the consumer's concern
    }
  }
  const iterator: AsyncIterator<T> = {
    async next() {
      if (pending) {
        const r = pending
        pending = undefined
        if (r.done) closed = true
        return r
      }
      if (closed) return { done: true, value: undefined }
      const r = await it.next()
      if (r.done) closed = true
      return r
    },
    async return() {
      await close()
      return { done: true, value: undefined }
    }
  }
  return { stream: { [Symbol.asyncIterator]: () => iterator }, close }
}
