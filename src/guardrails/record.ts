import type { Counter, Registry } from 'prom-client'
import { counter } from '../metrics/deferred.js'
import type { RequestContext } from '../context.js'
import { GatewayError } from '../errors.js'
import type { Store } from '../store/types.js'

export type GuardLayer = 'input' | 'reasoning' | 'output'
export type RecordedAction = 'block' | 'redact' | 'mask' | 'flag' | 'strip'

/** One guardrail action, safe to log: it never holds the matched text. */
export interface GuardrailEvent {
  requestId: string
  team: string
  session?: string
  layer: GuardLayer
  rule: string
  action: RecordedAction
  /** How many matches the action covered in this request. */
  count: number
}

/** What the guard steps need from the gateway. All optional: no store disables the session layer. */
export interface GuardDeps {
  /** Session state for the reasoning layer; shared by all instances when Redis-backed. */
  store?: Store
  /** Registry for `sluice_guardrail_actions_total`. */
  registry?: Registry
  /** Receives every action (audit log, tests). */
  record?: (event: GuardrailEvent) => void
}

const COUNTER = 'sluice_guardrail_actions_total'

function actionsCounter(registry: Registry | undefined): Counter<'layer' | 'rule' | 'action' | 'team'> | undefined {
  if (!registry) return undefined
  const existing = registry.getSingleMetric(COUNTER)
  if (existing) return existing as Counter<'layer' | 'rule' | 'action' | 'team'>
  return counter({
    name: COUNTER,
    help: 'Guardrail actions taken, by layer, rule, action and team.',
    labelNames: ['layer', 'rule', 'action', 'team'] as const,
    registers: [registry]
  })
}

export interface Recorder {
  /** Notes an action; repeated (rule, action) pairs in one request are summed. */
  add(layer: GuardLayer, rule: string, action: RecordedAction, count?: number): void
  /** Emits the noted actions (events, counter, `ctx.guardrails`). */
  flush(): void
  /** Records a block and returns the error to throw. */
  block(layer: GuardLayer, rule: string, message: string, param?: string): GatewayError
}

/**
 * The per-step recorder: aggregates actions so one request with ten e-mails makes one event.
 *
 * @example
 * const rec = createRecorder(deps, ctx)
 * rec.add('input', 'pii.email', 'redact')
 * rec.flush()
 */
export function createRecorder(deps: GuardDeps, ctx: RequestContext): Recorder {
  const actions = actionsCounter(deps.registry)
  const pending = new Map<string, GuardrailEvent>()
  function emit(e: GuardrailEvent): void {
    if (!ctx.guardrails.includes(e.rule)) ctx.guardrails.push(e.rule)
    const action = `${e.rule}:${e.action}`
    if (!(ctx.guardrailActions ??= []).includes(action)) ctx.guardrailActions.push(action)
    actions?.inc({ layer: e.layer, rule: e.rule, action: e.action, team: ctx.principal.team }, e.count)
    deps.record?.(e)
  }
  return {
    add(layer, rule, action, count = 1) {
      const key = `${layer}|${rule}|${action}`
      const e = pending.get(key)
      if (e) e.count += count
      else pending.set(key, { requestId: ctx.id, team: ctx.principal.team, session: ctx.session, layer, rule, action, count })
    },
    flush() {
      for (const e of pending.values()) emit(e)
      pending.clear()
    },
    block(layer, rule, message, param) {
      this.flush()
      emit({ requestId: ctx.id, team: ctx.principal.team, session: ctx.session, layer, rule, action: 'block', count: 1 })
      return guardrailBlocked(rule, message, param)
    }
  }
}

/**
 * The error for a blocked request or response: OpenAI-shaped 400 naming the rule.
 *
 * @example
 * throw guardrailBlocked('pii.credit_card', 'the input contains a credit card number')
 */
export function guardrailBlocked(rule: string, reason: string, param?: string): GatewayError {
  return new GatewayError(400, `Blocked by guardrail "${rule}": ${reason}`, {
    type: 'invalid_request_error',
    code: 'guardrail_blocked',
    param: param ?? null
  })
}
