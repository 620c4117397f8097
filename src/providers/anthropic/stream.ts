import { GatewayError, UpstreamError, toGatewayError } from '../../errors.js'
import type { ChatChunk, ChunkChoice, Usage } from '../../types.js'
import { anthropicStreamError, toAnthropicError } from './errors.js'
import { toAnthropicUsage, toCanonicalUsage, toFinishReason, toMessageId, toStopReason, toToolUseId } from './response.js'
import type { AnthropicStreamEvent, AnthropicUsage, StopReason } from './wire.js'

/**
 * Anthropic stream events → `chat.completion.chunk`s: a role chunk first, text and tool-call deltas as they
 * arrive, a chunk carrying finish_reason, then a usage chunk with `choices: []`. An `error` event throws an
 * UpstreamError; a stream that ends without `message_stop` throws a protocol error (a truncated answer must
 * not look complete).
 *
 * @example
 * for await (const chunk of anthropicEventsToChunks(events)) res.write(`data: ${JSON.stringify(chunk)}\n\n`)
 */
export async function* anthropicEventsToChunks(events: AsyncIterable<AnthropicStreamEvent>, created = Math.floor(Date.now() / 1000)): AsyncGenerator<ChatChunk> {
  let id = ''
  let model = ''
  let usage: Partial<AnthropicUsage> = {}
  // Anthropic numbers every content block; OpenAI numbers only tool calls.
  const toolIndexByBlock = new Map<number, { index: number; sentArgs: boolean }>()
  const chunk = (choices: ChunkChoice[], extra?: { usage: Usage }): ChatChunk => ({ id, object: 'chat.completion.chunk', created, model, choices, ...extra })
  const delta = (d: ChunkChoice['delta'], finish: string | null = null): ChatChunk => chunk([{ index: 0, delta: d, finish_reason: finish }])

  for await (const ev of events) {
    switch (ev.type) {
      case 'message_start':
        id = ev.message.id
        model = ev.message.model
        usage = { ...ev.message.usage }
        yield delta({ role: 'assistant', content: '' })
        break
      case 'content_block_start': {
        const block = ev.content_block
        if (block.type === 'tool_use') {
          const index = toolIndexByBlock.size
          toolIndexByBlock.set(ev.index, { index, sentArgs: false })
          yield delta({ tool_calls: [{ index, id: String(block.id), type: 'function', function: { name: String(block.name), arguments: '' } }] })
        } else if (block.type === 'text' && typeof block.text === 'string' && block.text !== '') {
          yield delta({ content: block.text })
        }
        break
      }
      case 'content_block_delta': {
        const d = ev.delta
        if (d.type === 'text_delta' && typeof d.text === 'string') {
          yield delta({ content: d.text })
        } else if (d.type === 'input_json_delta' && typeof d.partial_json === 'string' && d.partial_json !== '') {
          const tool = toolIndexByBlock.get(ev.index)
          if (!tool) break
          tool.sentArgs = true
          yield delta({ tool_calls: [{ index: tool.index, function: { arguments: d.partial_json } as { name: string; arguments: string } }] })
        }
        // thinking_delta, signature_delta, citations_delta: nothing in the OpenAI chunk shape carries them
        break
      }
      case 'content_block_stop': {
        // A tool called without arguments streams no JSON at all; OpenAI clients expect "{}".
        const tool = toolIndexByBlock.get(ev.index)
        if (tool && !tool.sentArgs) {
          tool.sentArgs = true
          yield delta({ tool_calls: [{ index: tool.index, function: { arguments: '{}' } as { name: string; arguments: string } }] })
        }
        break
      }
      case 'message_delta':
        // message_delta usage is cumulative; null fields mean "unchanged since message_start".
        for (const [k, v] of Object.entries(ev.usage ?? {})) if (v != null) usage[k] = v
        yield delta({}, toFinishReason(ev.delta.stop_reason))
        break
      case 'message_stop':
        yield chunk([], { usage: toCanonicalUsage(usage) })
        return
      case 'error':
        throw anthropicStreamError(ev.error)
      default:
        // ping and event types added later are ignored, as Anthropic's versioning policy asks
        break
    }
  }
  throw new UpstreamError(502, 'Anthropic stream ended before message_stop', { kind: 'protocol', code: 'truncated_stream', retryable: false })
}

/** One Anthropic SSE event ready to write: `event:` line, `data:` line, blank line. */
export function formatAnthropicSSE(ev: AnthropicStreamEvent): string {
  return `event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`
}

export interface ToAnthropicEventsOptions {
  /** Model name to report (the public name the client asked for); defaults to the chunks' model. */
  model?: string
  /** Input usage known before the first chunk (an estimate), reported in message_start. */
  inputTokens?: number
}

/**
 * Canonical chunks → Anthropic stream events in Anthropic's exact order: message_start, ping, then per block
 * content_block_start / content_block_delta… / content_block_stop, then message_delta (stop_reason, usage) and
 * message_stop. A failure of the source stream becomes an `error` event, as Anthropic sends it.
 *
 * @example
 * for await (const ev of chunksToAnthropicEvents(chunks, { model: 'claude-sonnet' })) res.write(formatAnthropicSSE(ev))
 */
export async function* chunksToAnthropicEvents(chunks: AsyncIterable<ChatChunk>, opts: ToAnthropicEventsOptions = {}): AsyncGenerator<AnthropicStreamEvent> {
  let started = false
  let blockIndex = -1
  let open: { kind: 'text' } | { kind: 'tool'; toolIndex: number } | undefined
  const blockByTool = new Map<number, number>()
  let stopReason: StopReason | null = null
  let usage: Usage | null | undefined

  function* start(c: ChatChunk): Generator<AnthropicStreamEvent> {
    if (started) return
    started = true
    yield {
      type: 'message_start',
      message: {
        id: toMessageId(c.id || 'sluice'),
        type: 'message',
        role: 'assistant',
        model: opts.model ?? c.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: opts.inputTokens ?? 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }
      }
    }
    yield { type: 'ping' }
  }
  function* close(): Generator<AnthropicStreamEvent> {
    if (open) yield { type: 'content_block_stop', index: blockIndex }
    open = undefined
  }

  try {
    for await (const c of chunks) {
      yield* start(c)
      if (c.usage) usage = c.usage
      for (const choice of c.choices) {
        if (choice.index !== 0) continue
        const text = choice.delta.content
        if (typeof text === 'string' && text !== '') {
          if (open?.kind !== 'text') {
            yield* close()
            open = { kind: 'text' }
            yield { type: 'content_block_start', index: ++blockIndex, content_block: { type: 'text', text: '' } }
          }
          yield { type: 'content_block_delta', index: blockIndex, delta: { type: 'text_delta', text } }
        }
        for (const call of choice.delta.tool_calls ?? []) {
          const toolIndex = call.index ?? 0
          if (!blockByTool.has(toolIndex)) {
            yield* close()
            blockByTool.set(toolIndex, ++blockIndex)
            open = { kind: 'tool', toolIndex }
            const callId = toToolUseId(call.id ?? `toolu_${blockIndex}`)
            yield { type: 'content_block_start', index: blockIndex, content_block: { type: 'tool_use', id: callId, name: call.function?.name ?? '', input: {} } }
          }
          const args = call.function?.arguments
          // Interleaved fragments of an earlier call keep that call's block index, which SDK accumulators key on.
          if (args) yield { type: 'content_block_delta', index: blockByTool.get(toolIndex)!, delta: { type: 'input_json_delta', partial_json: args } }
        }
        if (choice.finish_reason) stopReason = toStopReason(choice.finish_reason)
      }
    }
    if (!started) yield* start({ id: 'sluice', object: 'chat.completion.chunk', created: 0, model: opts.model ?? '', choices: [] })
    yield* close()
    const u = toAnthropicUsage(usage)
    yield {
      type: 'message_delta',
      delta: { stop_reason: stopReason ?? 'end_turn', stop_sequence: null },
      usage: { ...u, input_tokens: usage ? u.input_tokens : (opts.inputTokens ?? 0) }
    }
    yield { type: 'message_stop' }
  } catch (err) {
    const { body } = toAnthropicError(err instanceof GatewayError ? err : toGatewayError(err))
    yield { type: 'error', error: body.error }
  }
}
