/**
 * Detection quality of the guardrail rules on the labelled set shipped with the tests, and the time the
 * guard steps add per request. Run: `npx tsx bench/guardrails-eval.ts` (add `--json` for machine output).
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { performance } from 'node:perf_hooks'
import { createContext } from '../src/auth/context.js'
import type { RequestContext } from '../src/context.js'
import { findAll, type Detector } from '../src/guardrails/detect.js'
import { injectionDetectors } from '../src/guardrails/injection.js'
import { createGuardInputStep } from '../src/guardrails/input.js'
import { createGuardOutputStep } from '../src/guardrails/output.js'
import { PII_DETECTORS } from '../src/guardrails/pii.js'
import { guardrailsPolicySchema } from '../src/guardrails/schema.js'
import { SECRET_DETECTORS } from '../src/guardrails/secrets.js'
import type { ChatCompletion } from '../src/types.js'

const FIXTURES = fileURLToPath(new URL('../test/fixtures/guardrails/', import.meta.url))

export interface LabelledLine {
  label: string
  text: string
}

/** Reads a `label<TAB>text` file; `\n` in the text stands for a newline. */
export function readLabelled(file: string): LabelledLine[] {
  return readFileSync(FIXTURES + file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => {
      const tab = l.indexOf('\t')
      return { label: l.slice(0, tab), text: l.slice(tab + 1).replace(/\\n/g, '\n') }
    })
}

export interface RuleScore {
  rule: string
  positives: number
  tp: number
  fn: number
  fp: number
}

/**
 * Per-rule true positives, misses and false positives: a rule firing on a line labelled with it is a
 * TP, on any other line an FP; a line labelled with it where it does not fire is an FN.
 */
export function scoreRules(lines: LabelledLine[], detectors: Detector[], labelOf: (rule: string) => string = (r) => r): RuleScore[] {
  const scores = new Map<string, RuleScore>()
  const score = (rule: string) => {
    let s = scores.get(rule)
    if (!s) scores.set(rule, (s = { rule, positives: 0, tp: 0, fn: 0, fp: 0 }))
    return s
  }
  for (const d of detectors) score(labelOf(d.rule))
  for (const line of lines) {
    const fired = new Set(findAll(line.text, detectors).map((m) => labelOf(m.rule)))
    if (line.label !== '-' && scores.has(line.label)) {
      const s = score(line.label)
      s.positives++
      if (fired.has(line.label)) s.tp++
      else s.fn++
    }
    for (const rule of fired) if (rule !== line.label) score(rule).fp++
  }
  return [...scores.values()]
}

/** How often each rule fires on positive lines (any label but `-`) and on negative lines. */
export function firesByRule(lines: LabelledLine[], detectors: Detector[]): { rule: string; onPositives: number; onNegatives: number }[] {
  return detectors.map((d) => {
    let onPositives = 0
    let onNegatives = 0
    for (const l of lines) {
      if (d.find(l.text).length === 0) continue
      if (l.label === '-') onNegatives++
      else onPositives++
    }
    return { rule: d.rule, onPositives, onNegatives }
  })
}

/** The PII/secret table and the injection table at both levels. */
export function evaluateLabelledSet() {
  const data = readLabelled('pii-secrets.tsv')
  const dataDetectors = [...Object.values(SECRET_DETECTORS), ...Object.values(PII_DETECTORS)]
  const injection = readLabelled('injection.tsv')
  // At the standard level only direct injection is expected; indirect lines are out of scope (neither TP nor FP).
  const standardLines = injection.filter((l) => l.label !== 'indirect').map((l) => ({ ...l, label: l.label === 'direct' ? 'injection' : '-' }))
  const strictLines = injection.map((l) => ({ ...l, label: l.label === '-' ? '-' : 'injection' }))
  return {
    data: scoreRules(data, dataDetectors),
    negatives: data.filter((l) => l.label === '-').length,
    injectionStandard: scoreRules(standardLines, injectionDetectors('standard'), () => 'injection'),
    injectionStrict: scoreRules(strictLines, injectionDetectors('strict'), () => 'injection'),
    injectionStrictByRule: firesByRule(strictLines, injectionDetectors('strict')),
    injectionNegatives: injection.filter((l) => l.label === '-').length
  }
}

function table(title: string, rows: RuleScore[]): string {
  const lines = [`### ${title}`, '', '| rule | positives | true pos. | missed | false pos. |', '| --- | ---: | ---: | ---: | ---: |']
  for (const r of rows) lines.push(`| ${r.rule} | ${r.positives} | ${r.tp} | ${r.fn} | ${r.fp} |`)
  return lines.join('\n')
}

function fakeCtx(policy: unknown, content: string): RequestContext {
  return createContext({
    id: 'bench',
    principal: { team: 'bench', keyId: 'k' },
    policy: { budgets: [], rate_limits: [], guardrails: policy as never },
    headers: {},
    request: {
      model: 'gpt-4o-mini',
      messages: [
        { role: 'system', content: 'You are a helpful assistant for an online bookshop. Answer briefly.' },
        { role: 'user', content }
      ]
    },
    surface: 'chat',
    signal: new AbortController().signal
  })
}

/** Microseconds per request through both guard steps around a terminal step that answers at once. */
async function timeSteps(policy: unknown, content: string, iterations: number): Promise<number> {
  const input = createGuardInputStep({})
  const output = createGuardOutputStep({})
  const answer = 'The book ships in two days. '.repeat(20)
  const terminal = async () => ({
    type: 'json' as const,
    body: {
      id: 'x',
      object: 'chat.completion',
      created: 0,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }]
    } as ChatCompletion
  })
  const once = async () => {
    const ctx = fakeCtx(policy, content)
    await input(ctx, () => output(ctx, terminal))
  }
  for (let i = 0; i < 200; i++) await once()
  const t0 = performance.now()
  for (let i = 0; i < iterations; i++) await once()
  return ((performance.now() - t0) * 1000) / iterations
}

async function main() {
  const r = evaluateLabelledSet()
  const full = guardrailsPolicySchema.parse({
    input: { pii: {}, secrets: {}, injection: {}, deny: [{ name: 'rivals', terms: ['MegaBooks', 'ShelfCo'] }], max_input_tokens: 8000 },
    output: { pii: {}, secrets: {}, deny: [{ name: 'profanity', terms: ['darn'] }] }
  })
  const benign = 'Hi! I ordered "The Left Hand of Darkness" last week and it has not arrived yet. Can you check the status of order 10442 and tell me when it will be delivered?'
  const firing = 'Hi! My email is jane.doe@example.com and my card 4111 1111 1111 1111 was charged twice for order 10442, please refund it.'
  const n = 5000
  const timings = {
    noGuardrails: await timeSteps(undefined, benign, n),
    fullPolicyNothingFires: await timeSteps(full, benign, n),
    fullPolicyRedacting: await timeSteps(full, firing, n)
  }
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify({ ...r, timings }, null, 2))
    return
  }
  console.log(table(`PII and secrets (${r.negatives} hard negatives)`, r.data))
  console.log()
  console.log(table(`Injection, standard level (user messages; ${r.injectionNegatives} benign lines)`, r.injectionStandard))
  console.log()
  console.log(table('Injection, strict level (tool results and untrusted messages)', r.injectionStrict))
  console.log()
  console.log('### Injection, strict level, by rule')
  console.log()
  console.log('| rule | fires on injection lines | fires on benign lines |')
  console.log('| --- | ---: | ---: |')
  for (const x of r.injectionStrictByRule) console.log(`| ${x.rule} | ${x.onPositives} | ${x.onNegatives} |`)
  console.log()
  console.log('### Time added by the guard steps (µs per request, both steps, one process)')
  console.log()
  console.log('| case | µs/request |')
  console.log('| --- | ---: |')
  for (const [k, v] of Object.entries(timings)) console.log(`| ${k} | ${v.toFixed(1)} |`)
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await main()
