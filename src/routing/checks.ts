import { validateJsonAnswer, validateJsonSchema } from '../guardrails/json-schema.js'
import type { ChatCompletion, ChatRequest } from '../types.js'
import type { Checks } from './schema.js'

/** Why a cascade tier's answer was not accepted; also the `check` label of the escalation metric. */
export type FailedCheck = 'low_mean_logprob' | 'low_token_logprob' | 'no_logprobs' | 'invalid_json' | 'invalid_tool_args' | 'refusal' | 'empty' | 'judge' | 'truncated'

export interface CheckResult {
  ok: boolean
  failed?: FailedCheck
  detail?: string
}

// Phrases that mark an answer the model itself does not stand behind. Anchored near the start or as whole
// sentences, so an answer that merely quotes "I don't know" deep in a long text is not rejected.
const REFUSAL = [
  /^\s*(i'?m sorry|i am sorry|sorry)[,.!]?\s+(but\s+)?i\s+(can(no|')t|am unable|'m unable|won'?t)/i,
  /^\s*i\s+(can(no|')t|am unable to|'m unable to|won'?t)\s+(help|assist|answer|provide|comply|do that)/i,
  /^\s*(as an ai|as a language model)/i,
  /\bi\s+(do not|don'?t)\s+know\b/i,
  /\bi'?m\s+not\s+sure\b/i,
  /\bi\s+(do not|don'?t)\s+have\s+(enough\s+)?(information|the information|access)\b/i,
  /\bunable to (determine|answer)\b/i
]

/**
 * Whether an answer is a refusal or an "I don't know": the `refusal` field OpenAI sets, or one of a few
 * phrases near the start of a short answer.
 *
 * @example
 * isRefusal("I'm sorry, but I can't help with that.") // true
 */
export function isRefusal(text: string, refusalField?: unknown): boolean {
  if (typeof refusalField === 'string' && refusalField.length > 0) return true
  // only the opening of the answer: long answers that hedge once are still answers
  const head = text.slice(0, 300)
  return REFUSAL.some((r) => r.test(head))
}

/** Mean and minimum token logprob of an answer, or undefined when the tier gave none. */
export function logprobStats(body: ChatCompletion): { mean: number; min: number; tokens: number } | undefined {
  const lps = body.choices[0]?.logprobs?.content
  if (!lps || lps.length === 0) return undefined
  let sum = 0
  let min = 0
  for (const t of lps) {
    sum += t.logprob
    if (t.logprob < min) min = t.logprob
  }
  return { mean: sum / lps.length, min, tokens: lps.length }
}

/**
 * Run a cascade tier's checks on its complete answer, cheapest first; the first that fails is reported.
 * The judge model is not run here (it costs a call); see `judgeAnswer`.
 *
 * @example
 * checkAnswer(req, body, { min_mean_logprob: -0.5, json: true, tool_args: true, refusal: true })
 * // { ok: false, failed: 'low_mean_logprob', detail: 'mean logprob -1.20 < -0.5' }
 */
export function checkAnswer(req: ChatRequest, body: ChatCompletion, checks: Checks): CheckResult {
  const choice = body.choices[0]
  const msg = choice?.message
  const text = typeof msg?.content === 'string' ? msg.content : ''
  const toolCalls = msg?.tool_calls ?? []

  if (checks.refusal) {
    if (!text.trim() && toolCalls.length === 0) return { ok: false, failed: 'empty', detail: 'the answer is empty' }
    if (toolCalls.length === 0 && isRefusal(text, msg?.refusal)) return { ok: false, failed: 'refusal', detail: 'the answer is a refusal or "I don\'t know"' }
  }

  if (checks.json && toolCalls.length === 0) {
    const rf = req.response_format
    if (rf?.type === 'json_schema' && rf.json_schema?.schema) {
      const r = validateJsonAnswer(rf.json_schema.schema, stripFence(text))
      if (!r.valid) return { ok: false, failed: 'invalid_json', detail: r.errors.slice(0, 3).join('; ') }
    } else if (rf?.type === 'json_object') {
      const r = validateJsonAnswer({ type: 'object' }, stripFence(text))
      if (!r.valid) return { ok: false, failed: 'invalid_json', detail: r.errors.slice(0, 3).join('; ') }
    }
  }

  if (checks.tool_args) {
    const r = checkToolCalls(req, body)
    if (!r.ok) return r
  }

  if (checks.min_mean_logprob !== undefined || checks.min_token_logprob !== undefined) {
    const s = logprobStats(body)
    // tool calls carry no content logprobs; they are judged by their arguments
    if (!s && toolCalls.length === 0) return { ok: false, failed: 'no_logprobs', detail: 'the tier returned no logprobs' }
    if (s && checks.min_mean_logprob !== undefined && s.mean < checks.min_mean_logprob) {
      return { ok: false, failed: 'low_mean_logprob', detail: `mean logprob ${s.mean.toFixed(3)} < ${checks.min_mean_logprob}` }
    }
    if (s && checks.min_token_logprob !== undefined && s.min < checks.min_token_logprob) {
      return { ok: false, failed: 'low_token_logprob', detail: `min token logprob ${s.min.toFixed(3)} < ${checks.min_token_logprob}` }
    }
  }
  return { ok: true }
}

/** Tool calls name a declared tool, carry JSON arguments valid against its schema, and exist when required. */
function checkToolCalls(req: ChatRequest, body: ChatCompletion): CheckResult {
  const calls = body.choices[0]?.message?.tool_calls ?? []
  const tools = req.tools ?? []
  const choice = req.tool_choice
  const required = choice === 'required' || (typeof choice === 'object' && choice !== null)
  if (required && tools.length > 0 && calls.length === 0) return { ok: false, failed: 'invalid_tool_args', detail: 'tool_choice requires a tool call and none was made' }
  for (const call of calls) {
    const tool = tools.find((t) => t.function?.name === call.function.name)
    if (!tool) return { ok: false, failed: 'invalid_tool_args', detail: `call to undeclared tool "${call.function.name}"` }
    let args: unknown
    try {
      args = JSON.parse(call.function.arguments || '{}')
    } catch {
      return { ok: false, failed: 'invalid_tool_args', detail: `arguments of "${call.function.name}" are not valid JSON` }
    }
    if (tool.function.parameters) {
      const r = validateJsonSchema(tool.function.parameters, args)
      if (!r.valid) return { ok: false, failed: 'invalid_tool_args', detail: `${call.function.name}: ${r.errors.slice(0, 3).join('; ')}` }
    }
  }
  return { ok: true }
}

/** Small models often wrap JSON in a markdown fence; the JSON inside is what counts. */
function stripFence(text: string): string {
  const m = /^\s*```(?:json)?\s*\n([\s\S]*?)\n?```\s*$/i.exec(text)
  return m ? m[1]! : text
}

/** The messages sent to a judge model: the conversation's last user turn and the candidate answer. */
export function judgeMessages(req: ChatRequest, body: ChatCompletion): ChatRequest['messages'] {
  const lastUser = lastUserText(req)
  const msg = body.choices[0]?.message
  const answer = typeof msg?.content === 'string' && msg.content ? msg.content : JSON.stringify(msg?.tool_calls ?? [])
  return [
    {
      role: 'system',
      content:
        'You grade answers. Reply with one integer from 1 (wrong, unhelpful or evasive) to 10 (correct, complete and helpful), nothing else.'
    },
    { role: 'user', content: `Question:\n${lastUser.slice(0, 8000)}\n\nAnswer:\n${answer.slice(0, 8000)}\n\nGrade (1-10):` }
  ]
}

/** The score a judge gave: the first integer 1-10 in its answer. */
export function parseJudgeScore(body: ChatCompletion): number | undefined {
  const text = body.choices[0]?.message?.content
  if (typeof text !== 'string') return undefined
  const m = /\b(10|[1-9])\b/.exec(text)
  return m ? Number(m[1]) : undefined
}

/** The text of the last user message (text parts joined). */
export function lastUserText(req: Pick<ChatRequest, 'messages'>): string {
  for (let i = req.messages.length - 1; i >= 0; i--) {
    const m = req.messages[i]!
    if (m.role !== 'user') continue
    if (typeof m.content === 'string') return m.content
    if (Array.isArray(m.content)) return m.content.map((p) => (p.type === 'text' && typeof p.text === 'string' ? p.text : '')).join('\n')
    return ''
  }
  return ''
}
