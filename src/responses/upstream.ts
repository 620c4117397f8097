import { UpstreamError } from '../errors.js'
import type { ChatChunk, ChatCompletion, ToolCall, Usage } from '../types.js'
import type { ResponseObject } from './response.js'

/**
 * What an OpenAI Responses upstream answers (the pass-through of /v1/responses), in the canonical shapes the
 * pipeline works on: the ledger settles the usage, the output guard and the cache see the text and tool calls.
 */

type UpstreamItem = { type: string; id?: string; call_id?: string; name?: string; arguments?: string; input?: string; content?: { type: string; text?: string; refusal?: string }[]; action?: unknown }
type UpstreamUsage = { input_tokens?: number; output_tokens?: number; total_tokens?: number; input_tokens_details?: { cached_tokens?: number }; output_tokens_details?: { reasoning_tokens?: number } }

/**
 * The Responses API's usage → canonical usage (what the ledger prices: input, cached input, output).
 *
 * @example
 * fromResponseUsage({ input_tokens: 10, output_tokens: 5, input_tokens_details: { cached_tokens: 4 } })
 * // → { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15, prompt_tokens_details: { cached_tokens: 4 }, ... }
 */
export function fromResponseUsage(u: UpstreamUsage | null | undefined): Usage | undefined {
  if (!u) return undefined
  const input = u.input_tokens ?? 0
  const output = u.output_tokens ?? 0
  return {
    prompt_tokens: input,
    completion_tokens: output,
    total_tokens: u.total_tokens ?? input + output,
    prompt_tokens_details: { cached_tokens: u.input_tokens_details?.cached_tokens ?? 0 },
    completion_tokens_details: { reasoning_tokens: u.output_tokens_details?.reasoning_tokens ?? 0 }
  }
}

/** Items the client must execute; hosted tools (web search, file search) run at OpenAI and are not calls to it. */
const CLIENT_CALLS = new Set(['function_call', 'custom_tool_call', 'local_shell_call', 'computer_call'])

/** A call the client executes as a canonical tool call: custom and shell calls carry their input as arguments. */
function toToolCall(item: UpstreamItem): ToolCall | undefined {
  if (!CLIENT_CALLS.has(item.type)) return undefined
  const args = typeof item.arguments === 'string' ? item.arguments : typeof item.input === 'string' ? item.input : JSON.stringify(item.action ?? {})
  return { id: item.call_id ?? item.id ?? '', type: 'function', function: { name: item.name ?? item.type, arguments: args } }
}

function finishReason(status: string | undefined, reason: string | undefined, hasCalls: boolean): string {
  if (status === 'incomplete') return reason === 'content_filter' ? 'content_filter' : 'length'
  return hasCalls ? 'tool_calls' : 'stop'
}

/**
 * A Response object from the upstream → a canonical chat completion: message text as the content, refusals as
 * the refusal, every call item as a tool call; reasoning items have no canonical form and are left out.
 *
 * @example
 * responseToCompletion(await res.json()).choices[0].message.content // 'Hello'
 */
export function responseToCompletion(r: ResponseObject): ChatCompletion {
  if (r.status === 'failed') {
    throw new UpstreamError(502, r.error?.message ?? 'The upstream response failed', { kind: 'protocol', code: r.error?.code ?? 'upstream_response_failed', retryable: false })
  }
  let text = ''
  let refusal: string | undefined
  const calls: ToolCall[] = []
  for (const item of r.output as unknown as UpstreamItem[]) {
    if (item.type === 'message') {
      for (const part of item.content ?? []) {
        if (part.type === 'output_text') text += part.text ?? ''
        else if (part.type === 'refusal') refusal = (refusal ?? '') + (part.refusal ?? '')
      }
    } else {
      const call = toToolCall(item)
      if (call) calls.push(call)
    }
  }
  return {
    id: r.id,
    object: 'chat.completion',
    created: r.created_at,
    model: r.model,
    choices: [
      {
        index: 0,
        message: { role: 'assistant', content: calls.length && !text ? null : text, ...(refusal !== undefined ? { refusal } : {}), ...(calls.length ? { tool_calls: calls } : {}) },
        logprobs: null,
        finish_reason: finishReason(r.status, r.incomplete_details?.reason, calls.length > 0)
      }
    ],
    usage: fromResponseUsage(r.usage)
  } as ChatCompletion
}

/** One upstream stream event as received: its `event:` line and `data:` text, relayed as sent. */
export interface ResponseNativeEvent {
  event: string
  data: string
}

/**
 * The upstream's Responses stream events → canonical chunks. Each chunk carries, through `onChunk`, the raw
 * events consumed since the previous one, so /v1/responses can relay the upstream's own events; the last chunk
 * (`choices: []`, the usage from `response.completed`) carries the rest. `response.failed` and `error` events
 * end the stream with an UpstreamError.
 *
 * @example
 * const chunks = responseEventsToChunks(sseEvents(res, label, signal), label, (chunk, raw) => attachNative(chunk, 'responses', raw))
 */
export async function* responseEventsToChunks(
  events: AsyncIterable<{ event?: string; data: string }>,
  label: string,
  onChunk: (chunk: ChatChunk, raw: ResponseNativeEvent[]) => ChatChunk = (c) => c
): AsyncGenerator<ChatChunk> {
  let raw: ResponseNativeEvent[] = []
  let id = ''
  let model = ''
  let created = Math.floor(Date.now() / 1000)
  // output_index → the canonical tool-call index of a call item
  const callIndex = new Map<number, number>()
  let roleSent = false
  const chunk = (choices: ChatChunk['choices'], usage?: Usage): ChatChunk => {
    const c = { id, object: 'chat.completion.chunk', created, model, choices, ...(usage ? { usage } : {}) } as ChatChunk
    const out = onChunk(c, raw)
    raw = []
    return out
  }
  const delta = (d: Record<string, unknown>) => {
    const first = !roleSent
    roleSent = true
    return chunk([{ index: 0, delta: first ? { role: 'assistant', ...d } : d, finish_reason: null }] as ChatChunk['choices'])
  }

  for await (const m of events) {
    raw.push({ event: m.event ?? '', data: m.data })
    let ev: { type?: string; [k: string]: any }
    try {
      ev = JSON.parse(m.data)
    } catch {
      throw new UpstreamError(502, `${label} sent a stream event that is not valid JSON`, { kind: 'protocol', code: 'bad_upstream_response', retryable: false })
    }
    switch (ev.type) {
      case 'response.created':
        id = ev.response?.id ?? id
        model = ev.response?.model ?? model
        created = ev.response?.created_at ?? created
        break
      case 'response.output_text.delta':
        if (ev.delta) yield delta({ content: ev.delta })
        break
      case 'response.refusal.delta':
        if (ev.delta) yield delta({ refusal: ev.delta })
        break
      case 'response.output_item.added': {
        const call = ev.item ? toToolCall({ ...ev.item, arguments: '', input: '' }) : undefined
        if (!call) break
        const index = callIndex.size
        callIndex.set(ev.output_index, index)
        yield delta({ tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] })
        break
      }
      case 'response.function_call_arguments.delta':
      case 'response.custom_tool_call_input.delta': {
        const index = callIndex.get(ev.output_index)
        if (index !== undefined && ev.delta) yield delta({ tool_calls: [{ index, function: { arguments: ev.delta } }] })
        break
      }
      case 'response.completed':
      case 'response.incomplete': {
        const r = ev.response ?? {}
        yield chunk([{ index: 0, delta: {}, finish_reason: finishReason(r.status, r.incomplete_details?.reason, callIndex.size > 0) }] as ChatChunk['choices'])
        // the usage chunk closes the stream (its events went with the finish chunk)
        yield chunk([], fromResponseUsage(r.usage) ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 })
        return
      }
      case 'response.failed':
      case 'error': {
        const e = ev.type === 'error' ? ev : ev.response?.error
        throw new UpstreamError(502, e?.message ?? `${label} failed mid-stream`, { kind: 'protocol', code: e?.code ?? 'upstream_stream_error', retryable: false })
      }
    }
  }
  throw new UpstreamError(502, `${label} ended the stream before response.completed`, { kind: 'protocol', code: 'upstream_stream_truncated', retryable: false })
}
