import { randomBytes } from 'node:crypto'
import type { ChatCompletion, Usage } from '../types.js'
import type { ResponsesRequest } from './request.js'

export interface OutputText {
  type: 'output_text'
  text: string
  annotations: unknown[]
  logprobs: unknown[]
}

export type OutputItem =
  | { type: 'message'; id: string; status: 'in_progress' | 'completed' | 'incomplete'; role: 'assistant'; content: (OutputText | { type: 'refusal'; refusal: string })[] }
  | { type: 'function_call'; id: string; call_id: string; name: string; arguments: string; status: 'in_progress' | 'completed' | 'incomplete' }

export interface ResponseUsage {
  input_tokens: number
  input_tokens_details: { cached_tokens: number }
  output_tokens: number
  output_tokens_details: { reasoning_tokens: number }
  total_tokens: number
}

/** The Response object as the Responses API returns it (fields Sluice cannot fill are null). */
export interface ResponseObject {
  id: string
  object: 'response'
  created_at: number
  status: 'in_progress' | 'completed' | 'incomplete' | 'failed'
  error: null | { code: string; message: string }
  incomplete_details: null | { reason: 'max_output_tokens' | 'content_filter' }
  instructions: string | null
  max_output_tokens: number | null
  model: string
  output: OutputItem[]
  parallel_tool_calls: boolean
  previous_response_id: null
  reasoning: { effort: string | null; summary: null }
  store: false
  temperature: number | null
  text: { format: unknown }
  tool_choice: unknown
  tools: unknown[]
  top_p: number | null
  truncation: 'disabled'
  usage: ResponseUsage | null
  user: string | null
  metadata: Record<string, string>
  [k: string]: unknown
}

/** Ids in OpenAI's style: a prefix and 48 hex characters. */
export function newId(prefix: 'resp' | 'msg' | 'fc'): string {
  return `${prefix}_${randomBytes(24).toString('hex')}`
}

/**
 * The Response object before any output: what `response.created` carries, and the frame of the final one.
 *
 * @example
 * const shell = responseShell(body, { id: newId('resp'), model: 'gpt-4o-mini' })
 */
export function responseShell(req: ResponsesRequest, opts: { id: string; model: string; createdAt?: number }): ResponseObject {
  return {
    id: opts.id,
    object: 'response',
    created_at: opts.createdAt ?? Math.floor(Date.now() / 1000),
    status: 'in_progress',
    error: null,
    incomplete_details: null,
    instructions: req.instructions ?? null,
    max_output_tokens: req.max_output_tokens ?? null,
    model: opts.model,
    output: [],
    parallel_tool_calls: req.parallel_tool_calls ?? true,
    previous_response_id: null,
    reasoning: { effort: req.reasoning?.effort ?? null, summary: null },
    store: false,
    temperature: req.temperature ?? null,
    text: { format: req.text?.format ?? { type: 'text' } },
    tool_choice: req.tool_choice ?? 'auto',
    tools: req.tools ?? [],
    top_p: req.top_p ?? null,
    truncation: 'disabled',
    usage: null,
    user: req.user ?? null,
    metadata: req.metadata ?? {}
  }
}

/** Canonical usage → the Responses API's usage. */
export function toResponseUsage(u: Usage | null | undefined): ResponseUsage | null {
  if (!u) return null
  const reasoning = Number((u.completion_tokens_details as { reasoning_tokens?: number } | undefined)?.reasoning_tokens ?? 0)
  return {
    input_tokens: u.prompt_tokens,
    input_tokens_details: { cached_tokens: u.prompt_tokens_details?.cached_tokens ?? 0 },
    output_tokens: u.completion_tokens,
    output_tokens_details: { reasoning_tokens: reasoning },
    total_tokens: u.total_tokens
  }
}

/** finish_reason → the Response's status and incomplete_details. */
export function finishToStatus(finish: string | null | undefined): Pick<ResponseObject, 'status' | 'incomplete_details'> {
  if (finish === 'length') return { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } }
  if (finish === 'content_filter') return { status: 'incomplete', incomplete_details: { reason: 'content_filter' } }
  return { status: 'completed', incomplete_details: null }
}

/**
 * A canonical chat completion → a Response: the assistant text as one `message` item, each tool call as a
 * `function_call` item. Only the first choice is used (the Responses API has no `n`).
 *
 * @example
 * toResponse(completion, body).output // → [{ type: 'message', content: [{ type: 'output_text', text: 'Hi' }] }]
 */
export function toResponse(completion: ChatCompletion, req: ResponsesRequest, opts: { id?: string; model?: string } = {}): ResponseObject {
  const out = responseShell(req, { id: opts.id ?? newId('resp'), model: opts.model ?? completion.model, createdAt: completion.created })
  const choice = completion.choices[0]
  const status = finishToStatus(choice?.finish_reason)
  const itemStatus = status.status === 'completed' ? 'completed' : 'incomplete'
  const content = choice?.message.content
  const text = typeof content === 'string' ? content : Array.isArray(content) ? content.map((p) => (typeof p.text === 'string' ? p.text : '')).join('') : ''
  const refusal = typeof choice?.message.refusal === 'string' ? choice.message.refusal : undefined
  if (text !== '' || refusal) {
    out.output.push({
      type: 'message',
      id: newId('msg'),
      status: itemStatus,
      role: 'assistant',
      content: refusal ? [{ type: 'refusal', refusal }] : [{ type: 'output_text', text, annotations: [], logprobs: [] }]
    })
  }
  for (const call of choice?.message.tool_calls ?? []) {
    out.output.push({ type: 'function_call', id: newId('fc'), call_id: call.id, name: call.function.name, arguments: call.function.arguments, status: 'completed' })
  }
  return { ...out, ...status, usage: toResponseUsage(completion.usage) }
}
