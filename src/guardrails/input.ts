import type { RequestContext, Step } from '../context.js'
import { countPromptTokens } from '../tokens.js'
import type { ChatMessage, ChatRequest } from '../types.js'
import { CLASSIFIER_STATE_KEY } from './classifier.js'
import { compileGuardrails, type CompiledGuardrails } from './compile.js'
import { findAllRemembered, replaceMatches, type Detector } from './detect.js'
import { createRecorder, type GuardDeps, type Recorder } from './record.js'
import { createSessionGuard } from './session.js'
import { createPlaceholderVault, type PlaceholderVault } from './vault.js'

/** What the input step leaves for the output step in `ctx.state.guardrails`. */
export interface GuardState {
  vault: PlaceholderVault
}

type InputLayer = NonNullable<CompiledGuardrails['input']>

/**
 * The input guard: size limits, the session layer (limits, tool allow-list), injection scan, PII and
 * secret redaction (reversible by default) and deny rules. Rewrites `ctx.request` before `next()`.
 * Costs one property read when the policy has no `guardrails:` section.
 *
 * @example
 * const guardInput = createGuardInputStep({ store, registry, record: (e) => log.info(e) })
 * const run = createPipeline([identify, guardInput, createGuardOutputStep(deps), admit, cache, route])
 */
export function createGuardInputStep(deps: GuardDeps = {}): Step {
  return async (ctx, next) => {
    const policy = ctx.policy.guardrails
    if (!policy) return next()
    const g = compileGuardrails(policy)
    const rec = createRecorder(deps, ctx)
    if (g.reasoning) await guardReasoning(ctx, g.reasoning, deps, rec)
    if (g.input) guardInput(ctx, g.input, g.allowed, rec)
    rec.flush()
    return next()
  }
}

async function guardReasoning(ctx: RequestContext, r: NonNullable<CompiledGuardrails['reasoning']>, deps: GuardDeps, rec: Recorder): Promise<void> {
  const req = ctx.request
  if (r.allowTools && req.tools?.length) {
    const offered = req.tools.map((t) => t.function.name)
    const disallowed = offered.filter((n) => !r.allowTools!.has(n))
    if (disallowed.length > 0) {
      if (r.tools!.on_request === 'block') {
        throw rec.block('reasoning', 'tools.not_allowed', `tool(s) ${disallowed.join(', ')} are not on this team's allow-list`, 'tools')
      }
      const kept = req.tools.filter((t) => r.allowTools!.has(t.function.name))
      ctx.request = stripTools(req, kept)
      rec.add('reasoning', 'tools.not_allowed', 'strip', disallowed.length)
    }
  }
  if (deps.store && ctx.session) {
    const session = createSessionGuard(deps.store, r, ctx.principal.team, ctx.session)
    const violation = await session.admit(ctx.request.messages)
    if (violation) throw rec.block('reasoning', violation.rule, violation.message)
    if (r.max_cost_usd !== undefined) ctx.onDone.push((c) => session.addCost(c.costUsd))
  }
}

/** The request without the stripped tools; a tool_choice naming a stripped tool falls back to `auto`. */
function stripTools(req: ChatRequest, kept: ChatRequest['tools'] & object): ChatRequest {
  const out: ChatRequest = { ...req, tools: kept }
  const choice = req.tool_choice as { function?: { name?: string } } | string | undefined
  const named = typeof choice === 'object' ? choice?.function?.name : undefined
  if (named && !kept.some((t) => t.function.name === named)) out.tool_choice = 'auto'
  if (kept.length === 0) {
    delete out.tools
    delete out.tool_choice
    delete out.parallel_tool_calls
  }
  return out
}

function guardInput(ctx: RequestContext, layer: InputLayer, allowed: CompiledGuardrails['allowed'], rec: Recorder): void {
  const p = layer.policy
  const req = ctx.request
  if (p.max_messages !== undefined && req.messages.length > p.max_messages) {
    throw rec.block('input', 'limit.max_messages', `${req.messages.length} messages, the limit is ${p.max_messages}`, 'messages')
  }
  if (p.max_tools !== undefined && (req.tools?.length ?? 0) > p.max_tools) {
    throw rec.block('input', 'limit.max_tools', `${req.tools!.length} tools, the limit is ${p.max_tools}`, 'tools')
  }
  if (p.max_images !== undefined) {
    const images = countImages(req.messages)
    if (images > p.max_images) throw rec.block('input', 'limit.max_images', `${images} images, the limit is ${p.max_images}`, 'messages')
  }
  if (p.max_input_tokens !== undefined && exceedsTokens(req, p.max_input_tokens)) {
    const n = countPromptTokens(req)
    throw rec.block('input', 'limit.max_input_tokens', `${n} input tokens, the limit is ${p.max_input_tokens}`, 'messages')
  }

  const scanInjection = layer.injection.trusted.length > 0 || layer.injection.untrusted.length > 0
  const scanData = layer.detectors.length > 0
  let vault: PlaceholderVault | undefined
  const vaultFor = () => (vault ??= ((ctx.state.guardrails as GuardState | undefined)?.vault ?? createPlaceholderVault()))

  const rewrite = (text: string, injection: Detector[]): string => {
    if (injection.length > 0) text = applyRules(text, injection, () => layer.injection.action, rec, allowed, vaultFor, false)
    if (scanData) text = applyRules(text, layer.detectors, (rule) => layer.actions.get(rule)!.action, rec, allowed, vaultFor, true, layer)
    return text
  }

  // the classifier step runs later, after the trust markers are stripped
  if (p.injection?.classifier) ctx.state[CLASSIFIER_STATE_KEY] = req.messages.map((m) => m.untrusted === true || layer.injection.untrustedRoles.has(m.role))
  let changed = false
  const messages = req.messages.map((m) => {
    const untrusted = m.untrusted === true || layer.injection.untrustedRoles.has(m.role)
    // Assistant and system turns come from the model and the operator: only scanned for injection when marked untrusted.
    const injection = !scanInjection ? [] : untrusted ? layer.injection.untrusted : m.role === 'user' ? layer.injection.trusted : []
    const out = rewriteMessage(m, (t) => rewrite(t, injection))
    if (out !== m) changed = true
    return out
  })
  if (changed) ctx.request = { ...ctx.request, messages }
  if (vault && vault.size > 0) ctx.state.guardrails = { vault } satisfies GuardState
}

/** Runs detectors on one text and applies each match's action; returns the rewritten text. */
function applyRules(
  text: string,
  detectors: Detector[],
  actionOf: (rule: string) => string,
  rec: Recorder,
  allowed: ((v: string) => boolean) | undefined,
  vaultFor: () => PlaceholderVault,
  dataRules: boolean,
  layer?: InputLayer
): string {
  const matches = findAllRemembered(text, detectors, allowed)
  if (matches.length === 0) return text
  const replaced = matches.filter((m) => {
    const action = actionOf(m.rule)
    if (action === 'block') {
      throw rec.block('input', m.rule, dataRules ? 'the input contains data this team may not send' : 'the input looks like a prompt injection', 'messages')
    }
    rec.add('input', m.rule, action === 'flag' ? 'flag' : 'redact')
    return action !== 'flag'
  })
  return replaceMatches(text, replaced, (m, value) =>
    layer?.actions.get(m.rule)?.reversible ? vaultFor().placeholder(m.tag, value) : `[${m.tag}]`
  )
}

/** Applies `fn` to every text of a message (string content, text parts, tool-call arguments); same object when nothing changes. */
function rewriteMessage(m: ChatMessage, fn: (text: string) => string): ChatMessage {
  let out: ChatMessage = m
  const edit = (patch: Partial<ChatMessage>) => {
    if (out === m) out = { ...m }
    Object.assign(out, patch)
  }
  if ('untrusted' in m) {
    // Sluice's own trust label: providers would reject the unknown field.
    edit({})
    delete out.untrusted
  }
  if (typeof m.content === 'string') {
    const t = fn(m.content)
    if (t !== m.content) edit({ content: t })
  } else if (Array.isArray(m.content)) {
    let partsChanged = false
    const parts = m.content.map((part) => {
      if (part.type !== 'text' || typeof part.text !== 'string') return part
      const t = fn(part.text)
      if (t === part.text) return part
      partsChanged = true
      return { ...part, text: t }
    })
    if (partsChanged) edit({ content: parts })
  }
  if (m.tool_calls?.length) {
    let callsChanged = false
    const calls = m.tool_calls.map((c) => {
      const t = fn(c.function.arguments)
      if (t === c.function.arguments) return c
      callsChanged = true
      return { ...c, function: { ...c.function, arguments: t } }
    })
    if (callsChanged) edit({ tool_calls: calls })
  }
  return out
}

function countImages(messages: ChatMessage[]): number {
  let n = 0
  for (const m of messages) {
    if (Array.isArray(m.content)) for (const p of m.content) if (p.type === 'image_url' || p.type === 'input_image' || p.type === 'image') n++
  }
  return n
}

/** Exact count only when it can matter: a token is at least one UTF-8 byte, so a short request cannot exceed. */
function exceedsTokens(req: ChatRequest, max: number): boolean {
  let bytes = 0
  for (const m of req.messages) {
    if (typeof m.content === 'string') bytes += Buffer.byteLength(m.content)
    else if (Array.isArray(m.content)) bytes += Buffer.byteLength(JSON.stringify(m.content)) + 765 * countImages([m])
    if (m.tool_calls) bytes += Buffer.byteLength(JSON.stringify(m.tool_calls))
    bytes += 8
  }
  if (req.tools?.length) bytes += Buffer.byteLength(JSON.stringify(req.tools))
  if (bytes + 3 <= max) return false
  return countPromptTokens(req) > max
}
