import { GatewayError, toGatewayError } from '../errors.js'
import type { ChatChunk, Usage } from '../types.js'
import type { ResponsesRequest } from './request.js'
import { finishToStatus, newId, responseShell, toResponseUsage, type OutputItem, type ResponseObject } from './response.js'

/** One Responses API stream event; `sequence_number` counts from 0 in the order sent. */
export type ResponseStreamEvent = { type: string; sequence_number: number; [k: string]: unknown }

/** One event ready to write: `event:` line, `data:` line, blank line. */
export function formatResponseSSE(ev: ResponseStreamEvent): string {
  return `event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`
}

/**
 * Canonical chunks → Responses API stream events: `response.created`, `response.in_progress`, then per output
 * item `response.output_item.added`, its deltas (`response.content_part.added` + `response.output_text.delta`
 * for text, `response.function_call_arguments.delta` for a call), their `.done` events and
 * `response.output_item.done`, and finally `response.completed` (or `response.incomplete`) carrying the whole
 * Response with usage. A failing source ends the stream with an `error` event.
 *
 * @example
 * for await (const ev of chunksToResponseEvents(chunks, body, { model: 'gpt-4o-mini' })) res.write(formatResponseSSE(ev))
 */
export async function* chunksToResponseEvents(chunks: AsyncIterable<ChatChunk>, req: ResponsesRequest, opts: { id?: string; model: string }): AsyncGenerator<ResponseStreamEvent> {
  let seq = 0
  const ev = (type: string, fields: Record<string, unknown>): ResponseStreamEvent => ({ type, sequence_number: seq++, ...fields })
  const response = responseShell(req, { id: opts.id ?? newId('resp'), model: opts.model })
  const snapshot = (r: ResponseObject) => structuredClone(r)
  const output: OutputItem[] = []
  // the item receiving deltas now: text goes to an open message, argument fragments to their call
  let text: { item: Extract<OutputItem, { type: 'message' }>; index: number; value: string } | undefined
  const calls = new Map<number, { item: Extract<OutputItem, { type: 'function_call' }>; index: number; open: boolean }>()
  let finish: string | null = null
  let usage: Usage | null | undefined

  function* closeText(status: 'completed' | 'incomplete'): Generator<ResponseStreamEvent> {
    if (!text) return
    const { item, index, value } = text
    const part = { type: 'output_text' as const, text: value, annotations: [], logprobs: [] }
    item.content = [part]
    item.status = status
    yield ev('response.output_text.done', { item_id: item.id, output_index: index, content_index: 0, text: value, logprobs: [] })
    yield ev('response.content_part.done', { item_id: item.id, output_index: index, content_index: 0, part })
    yield ev('response.output_item.done', { output_index: index, item: structuredClone(item) })
    text = undefined
  }
  function* closeCalls(status: 'completed' | 'incomplete'): Generator<ResponseStreamEvent> {
    for (const c of calls.values()) {
      if (!c.open) continue
      c.open = false
      c.item.status = status
      yield ev('response.function_call_arguments.done', { item_id: c.item.id, output_index: c.index, name: c.item.name, arguments: c.item.arguments })
      yield ev('response.output_item.done', { output_index: c.index, item: structuredClone(c.item) })
    }
  }

  yield ev('response.created', { response: snapshot(response) })
  yield ev('response.in_progress', { response: snapshot(response) })
  try {
    for await (const chunk of chunks) {
      if (chunk.usage) usage = chunk.usage
      const choice = chunk.choices.find((c) => c.index === 0)
      if (!choice) continue
      const delta = choice.delta
      if (typeof delta.content === 'string' && delta.content !== '') {
        if (!text) {
          yield* closeCalls('completed')
          const item: Extract<OutputItem, { type: 'message' }> = { type: 'message', id: newId('msg'), status: 'in_progress', role: 'assistant', content: [] }
          output.push(item)
          text = { item, index: output.length - 1, value: '' }
          yield ev('response.output_item.added', { output_index: text.index, item: structuredClone(item) })
          yield ev('response.content_part.added', { item_id: item.id, output_index: text.index, content_index: 0, part: { type: 'output_text', text: '', annotations: [], logprobs: [] } })
        }
        text.value += delta.content
        yield ev('response.output_text.delta', { item_id: text.item.id, output_index: text.index, content_index: 0, delta: delta.content, logprobs: [] })
      }
      for (const tc of delta.tool_calls ?? []) {
        let call = calls.get(tc.index)
        if (!call) {
          yield* closeText('completed')
          const item: Extract<OutputItem, { type: 'function_call' }> = { type: 'function_call', id: newId('fc'), call_id: tc.id ?? newId('fc'), name: tc.function?.name ?? '', arguments: '', status: 'in_progress' }
          output.push(item)
          call = { item, index: output.length - 1, open: true }
          calls.set(tc.index, call)
          yield ev('response.output_item.added', { output_index: call.index, item: structuredClone(item) })
        }
        const args = tc.function?.arguments
        if (args) {
          call.item.arguments += args
          yield ev('response.function_call_arguments.delta', { item_id: call.item.id, output_index: call.index, delta: args })
        }
      }
      if (choice.finish_reason) finish = choice.finish_reason
    }
  } catch (err) {
    const e = err instanceof GatewayError ? err : toGatewayError(err)
    yield ev('error', { code: e.code ?? e.type, message: e.message, param: e.param })
    return
  }
  const status = finishToStatus(finish)
  const itemStatus = status.status === 'completed' ? 'completed' : 'incomplete'
  yield* closeText(itemStatus)
  yield* closeCalls(itemStatus)
  const final: ResponseObject = { ...response, ...status, output, usage: toResponseUsage(usage) }
  yield ev(status.status === 'completed' ? 'response.completed' : 'response.incomplete', { response: final })
}
