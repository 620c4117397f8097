import { allowListCheck, escapeRegExp, regexDetector, type Detector } from './detect.js'
import { injectionDetectors } from './injection.js'
import { PII_DETECTORS } from './pii.js'
import {
  PII_TYPES,
  SECRET_TYPES,
  type DenyRule,
  type GuardAction,
  type GuardrailsPolicy,
  type InputPolicy,
  type OutputPolicy,
  type ReasoningPolicy
} from './schema.js'
import { SECRET_DETECTORS } from './secrets.js'

/** A detector with the action its policy gives it. */
export interface ScanRule {
  detector: Detector
  action: GuardAction
  reversible: boolean
}

export interface CompiledGuardrails {
  input?: {
    policy: InputPolicy
    /** PII, secrets and deny rules: run on every message. */
    rules: ScanRule[]
    detectors: Detector[]
    actions: Map<string, ScanRule>
    injection: { trusted: Detector[]; untrusted: Detector[]; action: GuardAction; untrustedRoles: Set<string> }
  }
  reasoning?: ReasoningPolicy & { allowTools?: Set<string> }
  output?: {
    policy: OutputPolicy
    rules: ScanRule[]
    detectors: Detector[]
    actions: Map<string, ScanRule>
  }
  allowed?: (value: string) => boolean
}

/**
 * A deny rule as one detector: whole-word terms and regexes in one alternation.
 *
 * @example
 * denyDetector({ name: 'rivals', terms: ['AcmeCorp'], regex: [], case_sensitive: false, action: 'block' }).find('try acmecorp')
 */
export function denyDetector(rule: DenyRule): Detector {
  const parts: string[] = []
  if (rule.terms.length > 0) parts.push(`(?<![\\p{L}\\p{N}_])(?:${rule.terms.map(escapeRegExp).join('|')})(?![\\p{L}\\p{N}_])`)
  for (const r of rule.regex) parts.push(`(?:${r})`)
  const longestTerm = rule.terms.reduce((n, t) => Math.max(n, t.length), 0)
  const window = rule.regex.length > 0 ? Math.max(64, longestTerm + 1) : longestTerm + 1
  return regexDetector(`deny.${rule.name}`, 'DENIED', new RegExp(parts.join('|') || '(?!)', rule.case_sensitive ? 'u' : 'iu'), { window })
}

function familyRules<T extends string>(
  family: { action: GuardAction; types?: T[]; actions?: Partial<Record<T, GuardAction>>; reversible: boolean } | undefined,
  all: readonly T[],
  detectors: Record<T, Detector>
): ScanRule[] {
  if (!family) return []
  return (family.types ?? all).map((t) => ({
    detector: detectors[t],
    action: family.actions?.[t] ?? family.action,
    reversible: family.reversible
  }))
}

/** A layer's (input or output) secret, PII and deny rules, with the lookups the steps use. */
function scanSet(p: InputPolicy | OutputPolicy) {
  const rules: ScanRule[] = [
    ...familyRules(p.secrets, SECRET_TYPES, SECRET_DETECTORS),
    ...familyRules(p.pii, PII_TYPES, PII_DETECTORS),
    ...p.deny.map((d) => ({ detector: denyDetector(d), action: d.action, reversible: false }))
  ]
  return { rules, detectors: rules.map((r) => r.detector), actions: new Map(rules.map((r) => [r.detector.rule, r])) }
}

function compile(policy: GuardrailsPolicy): CompiledGuardrails {
  const out: CompiledGuardrails = { allowed: allowListCheck(policy.allow) }
  if (policy.input) {
    const p = policy.input
    out.input = {
      policy: p,
      ...scanSet(p),
      injection: {
        trusted: injectionDetectors(p.injection?.level ?? 'off'),
        untrusted: injectionDetectors(p.injection?.untrusted_level ?? 'off'),
        action: p.injection?.action ?? 'block',
        untrustedRoles: new Set(p.injection?.untrusted_roles ?? [])
      }
    }
  }
  if (policy.reasoning) {
    out.reasoning = { ...policy.reasoning, allowTools: policy.reasoning.tools ? new Set(policy.reasoning.tools.allow) : undefined }
  }
  if (policy.output) {
    const p = policy.output
    out.output = { policy: p, ...scanSet(p) }
  }
  return out
}

const compiled = new WeakMap<GuardrailsPolicy, CompiledGuardrails>()

/** Compiles a policy's guardrails once (policies are immutable objects after load; a reload makes new ones). */
export function compileGuardrails(policy: GuardrailsPolicy): CompiledGuardrails {
  let c = compiled.get(policy)
  if (!c) {
    c = compile(policy)
    compiled.set(policy, c)
  }
  return c
}
