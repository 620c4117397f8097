import type { ChatHistoryItem, ChatModelFunctionCall, ChatModelFunctions, ChatModelResponse, GbnfJsonSchema } from 'node-llama-cpp'
import { GatewayError } from '../../errors.js'
import type { ChatMessage, ChatRequest } from '../../types.js'

/**
 * Canonical messages → node-llama-cpp chat history, ending with an empty model turn to generate into.
 * Tool results are attached to the assistant's matching function call, as node-llama-cpp expects.
 *
 * @example
 * toChatHistory([{ role: 'user', content: 'hi' }]) // [{ type: 'user', text: 'hi' }, { type: 'model', response: [] }]
 */
export function toChatHistory(messages: ChatMessage[]): ChatHistoryItem[] {
  const history: ChatHistoryItem[] = []
  const callsById = new Map<string, ChatModelFunctionCall>()
  for (const [i, m] of messages.entries()) {
    switch (m.role) {
      case 'system':
      case 'developer':
        history.push({ type: 'system', text: textOf(m, i) })
        break
      case 'user':
        history.push({ type: 'user', text: textOf(m, i) })
        break
      case 'assistant': {
        const response: ChatModelResponse['response'] = []
        const text = textOf(m, i)
        if (text) response.push(text)
        for (const call of m.tool_calls ?? []) {
          const fc: ChatModelFunctionCall = { type: 'functionCall', name: call.function.name, params: parseArgs(call.function.arguments), result: undefined }
          callsById.set(call.id, fc)
          response.push(fc)
        }
        history.push({ type: 'model', response })
        break
      }
      case 'tool': {
        const call = m.tool_call_id ? callsById.get(m.tool_call_id) : undefined
        if (!call) throw invalid(`messages[${i}]: tool message has no matching assistant tool_call (tool_call_id "${m.tool_call_id ?? ''}")`)
        call.result = textOf(m, i)
        break
      }
      default:
        throw invalid(`messages[${i}]: role "${String(m.role)}" is not supported by the llama provider`)
    }
  }
  history.push({ type: 'model', response: [] })
  return history
}

/** OpenAI tool definitions → node-llama-cpp functions; undefined when tools are absent or tool_choice is "none". */
export function toFunctions(req: ChatRequest): ChatModelFunctions | undefined {
  if (!req.tools?.length || req.tool_choice === 'none') return undefined
  const functions: Record<string, { description?: string; params?: GbnfJsonSchema }> = {}
  for (const t of req.tools) {
    if (t.type !== 'function') continue
    functions[t.function.name] = {
      description: t.function.description,
      params: t.function.parameters as GbnfJsonSchema | undefined
    }
  }
  return functions
}

function textOf(m: ChatMessage, i: number): string {
  if (m.content == null) return ''
  if (typeof m.content === 'string') return m.content
  return m.content
    .map((part, j) => {
      if (part.type === 'text' && typeof part.text === 'string') return part.text
      throw invalid(`messages[${i}].content[${j}]: content type "${part.type}" is not supported by the llama provider (text only)`)
    })
    .join('')
}

function parseArgs(args: string): unknown {
  try {
    return JSON.parse(args)
  } catch {
    return args
  }
}

function invalid(message: string): GatewayError {
  return new GatewayError(400, message, { type: 'invalid_request_error', param: 'messages' })
}
