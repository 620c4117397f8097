import type { RequestContext, Step } from '../context.js'
import type { ChatChunk, ChatCompletion, ChunkChoice, ToolCall } from '../types.js'
import { compileGuardrails, type CompiledGuardrails } from './compile.js'
import { findAll, findAllRemembered, replaceMatches, type Match } from './detect.js'
import type { GuardState } from './input.js'
import { validateJsonAnswer } from './json-schema.js'
import { createRecorder, type GuardDeps, type Recorder } from './record.js'
import { createSessionGuard, type SessionGuard } from './session.js'
import { createStreamMasker } from './stream-mask.js'
import { createStreamRestorer, type PlaceholderVault } from './vault.js'

type OutputLayer = NonNullable<CompiledGuardrails['output']>

/** Everything the output guard does for one request, resolved once. */
interface OutputPlan {
  scan?: OutputLayer
  allowed?: (value: string) => boolean
  vault?: PlaceholderVault
  schema?: { value: Record<string, unknown>; action: 'block' | 'flag' }
  allowTools?: Set<string>
  session?: SessionGuard
  rec: Recorder
  /** The answer came from a cache: its texts come back on every hit, so their scans are remembered (`findAllRemembered`). */
  cached?: boolean
}

/**
 * The output guard: masks PII and secrets in answers and tool-call arguments, applies output deny
 * rules, restores the input's placeholders, validates `json_schema` answers, blocks calls to tools off
 * the allow-list, and detects loops across the session. Streams are masked as they flow, holding back
 * only a small window. Place it outside the cache step so cached answers are guarded too and never
 * hold restored values.
 *
 * @example
 * const run = createPipeline([identify, createGuardInputStep(deps), createGuardOutputStep(deps), admit, cache, route])
 */
export function createGuardOutputStep(deps: GuardDeps = {}): Step {
  return async (ctx, next) => {
    const policy = ctx.policy.guardrails
    if (!policy) return next()
    const plan = planOutput(ctx, compileGuardrails(policy), deps)
    if (!plan) return next()
    const result = await next()
    if (result.type === 'json') {
      // a miss's answer is scanned once and never again; a hit's is the same text every time
      plan.cached = ctx.cache === 'hit' || ctx.cache === 'semantic-hit'
      await guardCompletion(result.body, plan)
      plan.rec.flush()
      return result
    }
    return { type: 'stream', stream: guardStream(result.stream, plan) }
  }
}

function planOutput(ctx: RequestContext, g: CompiledGuardrails, deps: GuardDeps): OutputPlan | undefined {
  const scan = g.output && g.output.detectors.length > 0 ? g.output : undefined
  const vault = (ctx.state.guardrails as GuardState | undefined)?.vault
  const format = ctx.request.response_format
  const schemaAction = g.output?.policy.json_schema ?? 'block'
  const schema =
    format?.type === 'json_schema' && format.json_schema?.schema && schemaAction !== 'off'
      ? { value: format.json_schema.schema, action: schemaAction }
      : undefined
  const allowTools = g.reasoning?.allowTools
  const session = deps.store && ctx.session && g.reasoning?.loop ? createSessionGuard(deps.store, g.reasoning, ctx.principal.team, ctx.session) : undefined
  if (!scan && !vault && !schema && !allowTools && !session) return undefined
  return { scan, allowed: g.allowed, vault, schema, allowTools, session, rec: createRecorder(deps, ctx) }
}

/** What a match becomes in the answer; throws for `block`, keeps the text for `flag`. */
function outputAction(plan: OutputPlan, m: Match): string | undefined {
  const action = plan.scan!.actions.get(m.rule)!.action
  if (action === 'block') throw plan.rec.block('output', m.rule, 'the answer contains data this team may not receive')
  if (action === 'flag') {
    plan.rec.add('output', m.rule, 'flag')
    return undefined
  }
  plan.rec.add('output', m.rule, 'mask')
  return `[${m.tag}]`
}

/** Masks then restores one complete text. */
function guardText(text: string, plan: OutputPlan): string {
  if (plan.scan) {
    const matches = (plan.cached ? findAllRemembered : findAll)(text, plan.scan.detectors, plan.allowed)
    const masked = matches.filter((m) => outputAction(plan, m) !== undefined)
    text = replaceMatches(text, masked, (m) => `[${m.tag}]`)
  }
  return plan.vault ? plan.vault.restore(text) : text
}

function checkTool(name: string, plan: OutputPlan): void {
  if (plan.allowTools && !plan.allowTools.has(name)) {
    throw plan.rec.block('reasoning', 'tools.not_allowed', `the model called tool "${name}", which is not on this team's allow-list`)
  }
}

async function endOfAnswer(plan: OutputPlan, content: string, calls: Pick<ToolCall, 'function'>[], first: boolean): Promise<void> {
  if (plan.schema && calls.length === 0) {
    const r = validateJsonAnswer(plan.schema.value, content)
    if (!r.valid) {
      const why = `the answer does not match response_format.json_schema (${r.errors.slice(0, 3).join('; ')})`
      if (plan.schema.action === 'block') throw plan.rec.block('output', 'output.json_schema', why)
      plan.rec.add('output', 'output.json_schema', 'flag')
    }
  }
  // One agent turn per request: choice 0 is the one the agent continues with.
  if (plan.session && first) {
    const v = await plan.session.observeTurn({ toolCalls: calls, content })
    if (v) throw plan.rec.block('reasoning', v.rule, v.message)
  }
}

async function guardCompletion(body: ChatCompletion, plan: OutputPlan): Promise<void> {
  for (const choice of body.choices) {
    const msg = choice.message
    for (const call of msg.tool_calls ?? []) checkTool(call.function.name, plan)
    if (typeof msg.content === 'string') msg.content = guardText(msg.content, plan)
    if (msg.tool_calls) {
      msg.tool_calls = msg.tool_calls.map((c) => ({ ...c, function: { ...c.function, arguments: guardText(c.function.arguments, plan) } }))
    }
    await endOfAnswer(plan, typeof msg.content === 'string' ? msg.content : '', msg.tool_calls ?? [], choice.index === 0)
  }
}

/** A text channel of a stream (a choice's content, or one tool call's arguments): mask, then restore. */
function createChannel(plan: OutputPlan) {
  const masker = plan.scan
    ? createStreamMasker({ detectors: plan.scan.detectors, allowed: plan.allowed, onMatch: (m) => outputAction(plan, m) })
    : undefined
  const restorer = plan.vault ? createStreamRestorer(plan.vault) : undefined
  let sent = ''
  const through = (t: string) => {
    const out = restorer ? restorer.push(t) : t
    sent += out
    return out
  }
  return {
    push: (text: string) => through(masker ? masker.push(text) : text),
    flush(): string {
      let out = masker ? through(masker.flush()) : ''
      if (restorer) {
        const rest = restorer.flush()
        sent += rest
        out += rest
      }
      return out
    },
    // a method, not a getter: V8 builds an object literal with an accessor through its slow runtime path, and this
    // one is made per choice of every streamed answer
    sent: () => sent
  }
}
type Channel = ReturnType<typeof createChannel>

interface ChoiceState {
  content: Channel
  calls: Map<number, { name: string; args: Channel }>
  finished: boolean
}

async function* guardStream(source: AsyncIterable<ChatChunk>, plan: OutputPlan): AsyncGenerator<ChatChunk> {
  const choices = new Map<number, ChoiceState>()
  const stateOf = (i: number) => {
    let s = choices.get(i)
    if (!s) choices.set(i, (s = { content: createChannel(plan), calls: new Map(), finished: false }))
    return s
  }
  let last: ChatChunk | undefined
  try {
    for await (const chunk of source) {
      last = chunk
      if (chunk.choices.length === 0) {
        yield chunk
        continue
      }
      const out: ChatChunk = { ...chunk, choices: [] }
      for (const c of chunk.choices) {
        const s = stateOf(c.index)
        const choice: ChunkChoice = { ...c, delta: { ...c.delta } }
        if (typeof c.delta.content === 'string') choice.delta.content = s.content.push(c.delta.content)
        if (c.delta.tool_calls) {
          choice.delta.tool_calls = c.delta.tool_calls.map((tc) => {
            const idx = tc.index ?? 0
            let call = s.calls.get(idx)
            if (!call) s.calls.set(idx, (call = { name: '', args: createChannel(plan) }))
            if (tc.function?.name) {
              call.name += tc.function.name
              checkTool(call.name, plan)
            }
            if (typeof tc.function?.arguments !== 'string') return tc
            return { ...tc, function: { ...tc.function, arguments: call.args.push(tc.function.arguments) } }
          })
        }
        if (c.finish_reason != null) await finishChoice(s, choice, plan, c.index === 0)
        out.choices.push(choice)
      }
      yield out
    }
    // The stream ended without finish_reason (e.g. cut upstream): send what is still held.
    const tail: ChunkChoice[] = []
    for (const [index, s] of choices) {
      if (s.finished) continue
      const choice: ChunkChoice = { index, delta: {}, finish_reason: null }
      await finishChoice(s, choice, plan, index === 0)
      if (choice.delta.content || choice.delta.tool_calls?.length) tail.push(choice)
    }
    if (tail.length > 0 && last) yield { ...last, choices: tail, usage: undefined }
  } finally {
    plan.rec.flush()
  }
}

/** Flushes a choice's held text into its last delta and runs the end-of-answer checks. */
async function finishChoice(s: ChoiceState, choice: ChunkChoice, plan: OutputPlan, first: boolean): Promise<void> {
  s.finished = true
  const rest = s.content.flush()
  if (rest) choice.delta.content = (typeof choice.delta.content === 'string' ? choice.delta.content : '') + rest
  for (const [index, call] of s.calls) {
    const args = call.args.flush()
    if (!args) continue
    const deltas = (choice.delta.tool_calls ??= [])
    const existing = deltas.find((d) => (d.index ?? 0) === index)
    if (existing) existing.function = { ...existing.function, arguments: (existing.function?.arguments ?? '') + args } as ToolCall['function']
    else deltas.push({ index, function: { arguments: args } as ToolCall['function'] })
  }
  const calls = [...s.calls.values()].map((c) => ({ function: { name: c.name, arguments: c.args.sent() } }))
  await endOfAnswer(plan, s.content.sent(), calls, first)
}
