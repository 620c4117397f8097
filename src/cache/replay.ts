import type { ChatChunk, ChatCompletion, ChatMessage, ChunkChoice, TokenLogprob, ToolCall, Usage } from '../types.js'

/**
 * Replays a cached completion as the chunks an upstream would have streamed: per choice a role chunk,
 * the content (with its logprobs), the tool calls, a finish chunk; then, when the client asked for usage,
 * a final `choices: []` chunk with it (other chunks then carry `usage: null`, as OpenAI sends them).
 *
 * @example
 * for await (const chunk of completionToChunks(completion, { includeUsage: true })) send(chunk)
 */
export async function* completionToChunks(
  completion: ChatCompletion,
  opts: { includeUsage: boolean }
): AsyncGenerator<ChatChunk> {
  const base = {
    id: completion.id,
    object: 'chat.completion.chunk' as const,
    created: completion.created,
    model: completion.model,
    ...(completion.system_fingerprint !== undefined ? { system_fingerprint: completion.system_fingerprint } : {}),
    ...(opts.includeUsage ? { usage: null } : {})
  }
  const chunk = (choice: ChunkChoice): ChatChunk => ({ ...base, choices: [choice] })
  for (const choice of completion.choices) {
    const { role, content, tool_calls, refusal, ...extra } = choice.message
    yield chunk({ index: choice.index, delta: { role: role ?? 'assistant', content: '' }, finish_reason: null })
    if (typeof refusal === 'string' && refusal) {
      yield chunk({ index: choice.index, delta: { refusal }, finish_reason: null })
    }
    const text = typeof content === 'string' ? content : ''
    const logprobs = choice.logprobs?.content
    if (text || logprobs?.length) {
      yield chunk({
        index: choice.index,
        delta: { content: text, ...extra },
        finish_reason: null,
        ...(choice.logprobs ? { logprobs: choice.logprobs } : {})
      })
    }
    for (const [i, call] of (tool_calls ?? []).entries()) {
      yield chunk({
        index: choice.index,
        delta: { tool_calls: [{ index: i, id: call.id, type: call.type, function: { ...call.function } }] },
        finish_reason: null
      })
    }
    yield chunk({ index: choice.index, delta: {}, finish_reason: choice.finish_reason ?? 'stop' })
  }
  if (opts.includeUsage && completion.usage) yield { ...base, choices: [], usage: completion.usage }
}

interface ChoiceState {
  message: ChatMessage & { refusal?: string }
  content: string
  tools: Map<number, ToolCall>
  logprobs: TokenLogprob[] | null
  finish: string | null
}

/**
 * Assembles streamed chunks into the completion they add up to, so a streamed answer can be cached
 * while its chunks pass straight through to the client.
 *
 * @example
 * const asm = createChunkAssembler()
 * for await (const c of stream) { asm.add(c); yield c }
 * const completion = asm.result() // undefined if the stream never finished
 */
export function createChunkAssembler(): {
  add(chunk: ChatChunk): void
  /** The completion, or undefined when some choice never got a finish_reason. */
  result(): ChatCompletion | undefined
} {
  let head: { id: string; created: number; model: string; system_fingerprint?: string | null } | undefined
  let usage: Usage | undefined
  const choices = new Map<number, ChoiceState>()

  return {
    add(chunk) {
      head ??= {
        id: chunk.id,
        created: chunk.created,
        model: chunk.model,
        ...(chunk.system_fingerprint !== undefined ? { system_fingerprint: chunk.system_fingerprint as string | null } : {})
      }
      if (chunk.usage) usage = chunk.usage
      for (const c of chunk.choices) {
        let s = choices.get(c.index)
        if (!s) {
          s = { message: { role: 'assistant' }, content: '', tools: new Map(), logprobs: null, finish: null }
          choices.set(c.index, s)
        }
        const { role, content, tool_calls, refusal, ...extra } = c.delta
        if (typeof role === 'string') s.message.role = role as ChatMessage['role']
        if (typeof content === 'string') s.content += content
        if (typeof refusal === 'string') s.message.refusal = (s.message.refusal ?? '') + refusal
        Object.assign(s.message, extra)
        for (const t of tool_calls ?? []) {
          const at = t.index ?? s.tools.size
          const call = s.tools.get(at) ?? { id: '', type: 'function' as const, function: { name: '', arguments: '' } }
          if (t.id) call.id = t.id
          if (t.function?.name) call.function.name += t.function.name
          if (t.function?.arguments) call.function.arguments += t.function.arguments
          s.tools.set(at, call)
        }
        if (c.logprobs?.content) s.logprobs = [...(s.logprobs ?? []), ...c.logprobs.content]
        if (c.finish_reason) s.finish = c.finish_reason
      }
    },

    result() {
      if (!head || choices.size === 0) return undefined
      const out: ChatCompletion['choices'] = []
      for (const [index, s] of [...choices].sort((a, b) => a[0] - b[0])) {
        if (!s.finish) return undefined
        const message: ChatMessage = { ...s.message, content: s.tools.size > 0 && !s.content ? null : s.content }
        if (s.tools.size > 0) message.tool_calls = [...s.tools].sort((a, b) => a[0] - b[0]).map(([, call]) => call)
        out.push({
          index,
          message,
          finish_reason: s.finish,
          ...(s.logprobs ? { logprobs: { content: s.logprobs } } : {})
        })
      }
      return { ...head, object: 'chat.completion', choices: out, ...(usage ? { usage } : {}) }
    }
  }
}
