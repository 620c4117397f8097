import { GatewayError } from '../errors.js'
import type { ChatMessage, ChatRequest, ContentPart, ToolCall, ToolDefinition } from '../types.js'

/** The OpenAI Responses API request fields Sluice reads; the rest is checked against the unsupported list. */
export interface ResponsesRequest {
  model: string
  input?: string | ResponseInputItem[]
  instructions?: string | null
  tools?: { type: string; name?: string; description?: string | null; parameters?: Record<string, unknown> | null; strict?: boolean | null; [k: string]: unknown }[]
  tool_choice?: unknown
  parallel_tool_calls?: boolean | null
  max_output_tokens?: number | null
  temperature?: number | null
  top_p?: number | null
  text?: { format?: { type: string; name?: string; schema?: Record<string, unknown>; strict?: boolean | null; description?: string }; verbosity?: string | null } | null
  reasoning?: { effort?: string | null; [k: string]: unknown } | null
  stream?: boolean | null
  user?: string
  metadata?: Record<string, string> | null
  [k: string]: unknown
}

export type ResponseInputItem = { type?: string; role?: string; content?: unknown; [k: string]: unknown }

/**
 * Responses API features that need state or tools Sluice does not have. Each is a clear 400 rather than an
 * answer that silently ignores what the client asked for.
 */
const UNSUPPORTED: { field: string; when: (v: unknown) => boolean; why: string }[] = [
  { field: 'previous_response_id', when: (v) => v != null, why: 'Sluice does not store responses; send the whole conversation in `input`' },
  { field: 'conversation', when: (v) => v != null, why: 'Sluice does not store conversations; send the whole conversation in `input`' },
  { field: 'store', when: (v) => v === true, why: 'Sluice does not store responses; send `store: false` (or omit it)' },
  { field: 'background', when: (v) => v === true, why: 'background responses are not supported' },
  { field: 'prompt', when: (v) => v != null, why: 'stored prompt templates are not supported; send `instructions` and `input`' }
]

/**
 * A Responses API request → the canonical chat request. `instructions` becomes a system message, input items
 * become messages (function_call items an assistant turn with tool_calls, function_call_output items tool
 * messages), function tools become chat tools, `text.format` becomes `response_format`, `max_output_tokens`
 * becomes `max_completion_tokens`. Reasoning items from earlier turns are dropped; anything else without a chat
 * equivalent (built-in tools, item references, stored state) is a 400 naming the field.
 *
 * @example
 * fromResponsesRequest({ model: 'gpt-4o-mini', instructions: 'Be brief', input: 'Hi' })
 * // → { model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'Be brief' }, { role: 'user', content: 'Hi' }] }
 */
export function fromResponsesRequest(body: ResponsesRequest): ChatRequest {
  return translate(body, undefined)
}

/**
 * The canonical view of a Responses request that an OpenAI target receives as sent (the pass-through). The
 * pipeline still needs a canonical request (input guard, budget estimate, cache key), but what has no chat form
 * must not fail the request: custom and built-in tools are left out, their call and output items become
 * assistant tool calls and tool messages (so guards and token estimates still see their text), and other items
 * are left out. `lossy` says whether anything was left out or approximated.
 *
 * @example
 * fromResponsesPassThrough({ model: 'gpt-5', input: 'Fix it', tools: [{ type: 'custom', name: 'apply_patch' }] })
 * // → { request: { model: 'gpt-5', messages: [{ role: 'user', content: 'Fix it' }] }, lossy: true }
 */
export function fromResponsesPassThrough(body: ResponsesRequest): { request: ChatRequest; lossy: boolean } {
  const state = { lossy: false }
  const request = translate(body, state)
  return { request, lossy: state.lossy }
}

/** Fields a pass-through may carry because the upstream keeps the state; the canonical view cannot see it. */
const UPSTREAM_STATE = new Set(['previous_response_id', 'conversation', 'store', 'prompt'])

function translate(body: ResponsesRequest, lenient: { lossy: boolean } | undefined): ChatRequest {
  for (const u of UNSUPPORTED) {
    if (!u.when(body[u.field])) continue
    if (lenient && UPSTREAM_STATE.has(u.field)) lenient.lossy = true
    else throw new GatewayError(400, `'${u.field}' is not supported: ${u.why}.`, { param: u.field, code: 'unsupported_parameter' })
  }
  const messages: ChatMessage[] = []
  if (body.instructions) messages.push({ role: 'system', content: body.instructions })
  if (typeof body.input === 'string') messages.push({ role: 'user', content: body.input })
  else if (Array.isArray(body.input)) body.input.forEach((item, i) => addItem(messages, item, `input[${i}]`, lenient))
  if (!messages.some((m) => m.role !== 'system')) {
    // with upstream state (previous_response_id) the new input may be only items the canonical view left out
    if (!lenient?.lossy) throw new GatewayError(400, "'input' must contain at least one message.", { param: 'input', code: 'invalid_request' })
    messages.push({ role: 'user', content: '' })
  }

  const out: ChatRequest = { model: body.model, messages }
  let tools = body.tools
  if (lenient && tools) {
    tools = tools.filter((t) => t.type === 'function' && t.name)
    if (tools.length < body.tools!.length) lenient.lossy = true
  }
  if (tools?.length) out.tools = tools.map(toChatTool)
  if (body.tool_choice != null) {
    const choice = lenient ? lenientToolChoice(body.tool_choice, lenient) : body.tool_choice
    if (choice != null) out.tool_choice = toChatToolChoice(choice)
  }
  if (body.parallel_tool_calls != null) out.parallel_tool_calls = body.parallel_tool_calls
  if (body.max_output_tokens != null) out.max_completion_tokens = body.max_output_tokens
  if (body.temperature != null) out.temperature = body.temperature
  if (body.top_p != null) out.top_p = body.top_p
  if (body.user) out.user = body.user
  if (body.metadata) out.metadata = body.metadata
  if (body.reasoning?.effort) out.reasoning_effort = body.reasoning.effort
  if (body.text?.verbosity) out.verbosity = body.text.verbosity
  for (const k of ['service_tier', 'prompt_cache_key', 'safety_identifier', 'top_logprobs'] as const) if (body[k] != null) (out as Record<string, unknown>)[k] = body[k]
  const format = body.text?.format
  if (format && format.type === 'json_object') out.response_format = { type: 'json_object' }
  else if (format && format.type === 'json_schema') {
    out.response_format = { type: 'json_schema', json_schema: { name: format.name, schema: format.schema, ...(format.strict != null ? { strict: format.strict } : {}) } }
  } else if (format && format.type !== 'text') {
    if (lenient) lenient.lossy = true
    else throw new GatewayError(400, `text.format type "${format.type}" is not supported.`, { param: 'text.format.type' })
  }
  if (body.stream) {
    out.stream = true
    out.stream_options = { include_usage: true }
  }
  return out
}

function addItem(messages: ChatMessage[], item: ResponseInputItem, path: string, lenient?: { lossy: boolean }): void {
  const type = item.type ?? 'message'
  if (lenient && type !== 'message' && type !== 'function_call' && type !== 'function_call_output' && type !== 'reasoning') {
    lenient.lossy = true
    return addOpaqueItem(messages, item)
  }
  switch (type) {
    case 'message': {
      const role = item.role
      if (role !== 'user' && role !== 'assistant' && role !== 'system' && role !== 'developer') {
        throw new GatewayError(400, `${path}.role: "${String(role)}" is not a message role.`, { param: `${path}.role` })
      }
      const content = toContent(item.content, `${path}.content`, lenient)
      if (role === 'assistant') {
        // chat assistant messages are text: output_text parts joined
        const text = typeof content === 'string' ? content : content.map((p) => (typeof p.text === 'string' ? p.text : '')).join('')
        messages.push({ role: 'assistant', content: text })
      } else messages.push({ role, content })
      return
    }
    case 'function_call': {
      const call: ToolCall = { id: String(item.call_id ?? item.id), type: 'function', function: { name: String(item.name), arguments: typeof item.arguments === 'string' ? item.arguments : '{}' } }
      const last = messages[messages.length - 1]
      // a turn's text and its (parallel) calls arrive as consecutive items; chat wants one assistant message
      if (last?.role === 'assistant') last.tool_calls = [...(last.tool_calls ?? []), call]
      else messages.push({ role: 'assistant', content: null, tool_calls: [call] })
      return
    }
    case 'function_call_output': {
      const output = item.output
      const content = typeof output === 'string' ? output : Array.isArray(output) ? (output as { type?: string; text?: string }[]).map((p) => p.text ?? '').join('') : JSON.stringify(output ?? '')
      messages.push({ role: 'tool', tool_call_id: String(item.call_id), content })
      return
    }
    case 'reasoning':
      // reasoning from an earlier turn only means something to the model that produced it
      return
    case 'item_reference':
      throw new GatewayError(400, `${path}: item references need stored responses, which Sluice does not keep; send the item itself.`, { param: path, code: 'unsupported_parameter' })
    default:
      throw new GatewayError(400, `${path}: input items of type "${type}" are not supported (built-in tools are not available through Sluice).`, { param: `${path}.type`, code: 'unsupported_parameter' })
  }
}

/**
 * An item with no chat form, in the canonical view of a pass-through: a call (custom_tool_call, local_shell_call,
 * built-in tool calls) becomes an assistant tool call with its input as the arguments, an output a tool message;
 * anything else is left out.
 */
function addOpaqueItem(messages: ChatMessage[], item: ResponseInputItem): void {
  const callId = typeof item.call_id === 'string' ? item.call_id : typeof item.id === 'string' ? item.id : undefined
  if (item.output !== undefined && callId) {
    const output = item.output
    messages.push({ role: 'tool', tool_call_id: callId, content: typeof output === 'string' ? output : JSON.stringify(output) })
    return
  }
  if (!callId || !String(item.type).endsWith('_call')) return
  const input = typeof item.input === 'string' ? item.input : JSON.stringify(item.action ?? item.arguments ?? {})
  const call: ToolCall = { id: callId, type: 'function', function: { name: String(item.name ?? item.type), arguments: input } }
  const last = messages[messages.length - 1]
  if (last?.role === 'assistant') last.tool_calls = [...(last.tool_calls ?? []), call]
  else messages.push({ role: 'assistant', content: null, tool_calls: [call] })
}

/** A tool_choice naming a tool the canonical view left out is left out too (the upstream gets it as sent). */
function lenientToolChoice(choice: unknown, lenient: { lossy: boolean }): unknown {
  if (choice === 'auto' || choice === 'none' || choice === 'required') return choice
  const c = choice as { type?: string; name?: string }
  if (c?.type === 'function' && c.name) return choice
  lenient.lossy = true
  return undefined
}

function toContent(content: unknown, path: string, lenient?: { lossy: boolean }): string | ContentPart[] {
  if (typeof content === 'string') return content
  if (!Array.isArray(content)) throw new GatewayError(400, `${path} must be a string or an array of content parts.`, { param: path })
  if (lenient) {
    // parts with no chat form (file ids, file URLs) reach the upstream as sent; the canonical view leaves them out
    const parts: ContentPart[] = []
    content.forEach((part, j) => {
      try {
        parts.push(toPart(part, path, j))
      } catch {
        lenient.lossy = true
      }
    })
    return parts
  }
  return content.map((part, j) => toPart(part, path, j))
}

function toPart(part: { type?: string; [k: string]: unknown }, path: string, j: number): ContentPart {
  switch (part.type) {
    case 'input_text':
    case 'output_text':
      return { type: 'text', text: String(part.text ?? '') }
    case 'refusal':
      return { type: 'text', text: String(part.refusal ?? '') }
    case 'input_image': {
      if (typeof part.image_url !== 'string') throw new GatewayError(400, `${path}[${j}]: input_image needs image_url (file_id is not supported).`, { param: `${path}[${j}]` })
      return { type: 'image_url', image_url: { url: part.image_url, ...(part.detail ? { detail: String(part.detail) } : {}) } }
    }
    case 'input_file': {
      if (typeof part.file_data !== 'string') throw new GatewayError(400, `${path}[${j}]: input_file needs file_data (file_id and file_url are not supported).`, { param: `${path}[${j}]` })
      return { type: 'file', file: { file_data: part.file_data, ...(part.filename ? { filename: part.filename } : {}) } }
    }
    default:
      throw new GatewayError(400, `${path}[${j}]: content type "${String(part.type)}" is not supported.`, { param: `${path}[${j}].type` })
  }
}

function toChatTool(tool: NonNullable<ResponsesRequest['tools']>[number], i: number): ToolDefinition {
  if (tool.type !== 'function' || !tool.name) {
    throw new GatewayError(400, `tools[${i}]: tool type "${tool.type}" is not supported; only function tools are (built-in tools need OpenAI's hosted state).`, { param: `tools[${i}].type`, code: 'unsupported_parameter' })
  }
  const fn: ToolDefinition['function'] = { name: tool.name, parameters: tool.parameters ?? { type: 'object', properties: {} } }
  if (tool.description) fn.description = tool.description
  if (tool.strict != null) fn.strict = tool.strict
  return { type: 'function', function: fn }
}

function toChatToolChoice(choice: unknown): unknown {
  if (choice === 'auto' || choice === 'none' || choice === 'required') return choice
  const c = choice as { type?: string; name?: string }
  if (c?.type === 'function' && c.name) return { type: 'function', function: { name: c.name } }
  throw new GatewayError(400, `tool_choice ${JSON.stringify(choice).slice(0, 80)} is not supported; use auto, none, required or a function.`, { param: 'tool_choice', code: 'unsupported_parameter' })
}
