/**
 * Offline evaluation of the pre-call difficulty router (`router: { kind: score }`) on MMLU prompts with the
 * recorded correctness of a weak model (Mixtral-8x7B-Instruct) and a strong one (GPT-4-1106). No model is
 * called.
 *
 * Held-out protocol: the 57 subjects are split (deterministically, by a hash of the subject name) into a dev
 * half and a test half. Thresholds for each target share of prompts sent to the strong model are chosen on
 * dev; the table reports the test half only, next to random routing at the share actually reached on test
 * (its exact expectation). Whole subjects are held out, so a scorer cannot win by recognising a subject's
 * phrasing. Variants: the shipped built-in weights, the same with the exam-phrasing features switched on,
 * and weights fitted on dev (with and without those features), to show what the features can do at best.
 *
 * Run: `npx tsx bench/router-eval.ts [DATA_DIR] [--scorer NAME] [--json]`
 * (DATA_DIR defaults to ../shared/data/routing/mmlu next to the repository).
 */
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { seededRandom } from '../src/random.js'
import { BUILTIN_WEIGHTS, featureScorer, promptFeatures, scorerNamed, type DifficultyScorer, type FeatureWeights, type PromptFeatures } from '../src/routing/scorer.js'

export interface Labelled {
  subject: string
  prompt: string
  weak: boolean
  strong: boolean
}

/** RFC 4180 CSV: quoted fields may hold commas, newlines and doubled quotes. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = []
  let row: string[] = []
  let field = ''
  let quoted = false
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') {
        field += '"'
        i++
      } else if (ch === '"') quoted = false
      else field += ch
    } else if (ch === '"') quoted = true
    else if (ch === ',') {
      row.push(field)
      field = ''
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++
      row.push(field)
      rows.push(row)
      row = []
      field = ''
    } else field += ch
  }
  if (field !== '' || row.length) {
    row.push(field)
    rows.push(row)
  }
  return rows
}

/** Every `*.csv` of the folder: header `prompt,<weak model>,<strong model>`, booleans as True/False. */
export function loadMmlu(dir: string): Labelled[] {
  const out: Labelled[] = []
  for (const file of readdirSync(dir).filter((f) => f.endsWith('.csv')).sort()) {
    const [header, ...rows] = parseCsv(readFileSync(join(dir, file), 'utf8'))
    if (!header || header.length < 3) continue
    const subject = file.replace(/^mmlu_|\.csv$/g, '')
    for (const r of rows) if (r.length >= 3) out.push({ subject, prompt: r[0]!, weak: r[1] === 'True', strong: r[2] === 'True' })
  }
  return out
}

/** Dev and test halves by subject: subjects ordered by sha256("router-eval:" + subject), the first half is dev. */
export function splitBySubject(items: Labelled[]): { dev: Labelled[]; test: Labelled[]; devSubjects: string[]; testSubjects: string[] } {
  const subjects = [...new Set(items.map((x) => x.subject))]
  const key = (s: string) => createHash('sha256').update(`router-eval:${s}`).digest('hex')
  subjects.sort((a, b) => (key(a) < key(b) ? -1 : 1))
  const devSubjects = subjects.slice(0, Math.ceil(subjects.length / 2)).sort()
  const dev = new Set(devSubjects)
  return {
    dev: items.filter((x) => dev.has(x.subject)),
    test: items.filter((x) => !dev.has(x.subject)),
    devSubjects,
    testSubjects: subjects.filter((s) => !dev.has(s)).sort()
  }
}

/** The threshold that sends about `share` of these scores to the strong model (score >= threshold). */
export function thresholdForShare(scores: number[], share: number): number {
  const sorted = [...scores].sort((a, b) => b - a)
  const k = Math.round(share * sorted.length)
  if (k <= 0) return Infinity
  return sorted[Math.min(k, sorted.length) - 1]!
}

export interface HeldOutRow {
  /** Share aimed at on dev. */
  targetShare: number
  /** Threshold chosen on dev. */
  threshold: number
  /** Share of test prompts the threshold sends to the strong model. */
  testShare: number
  accuracy: number
  /** Random routing at `testShare`, its expectation. */
  randomAccuracy: number
}

/** Route the test prompts with a dev-chosen threshold; accuracy next to random routing at the same share. */
export function evaluateHeldOut(test: Labelled[], scores: number[], targetShare: number, threshold: number): HeldOutRow {
  const n = test.length
  let routed = 0
  let correct = 0
  let weak = 0
  let strong = 0
  test.forEach((x, i) => {
    const toStrong = scores[i]! >= threshold
    if (toStrong) routed++
    if (toStrong ? x.strong : x.weak) correct++
    if (x.weak) weak++
    if (x.strong) strong++
  })
  const testShare = routed / n
  return { targetShare, threshold, testShare, accuracy: correct / n, randomAccuracy: (weak + testShare * (strong - weak)) / n }
}

/**
 * 95% interval of the mean gain over random (across the inner shares), resampling test subjects with
 * replacement: prompts of one subject are not independent, so subjects are the unit.
 */
export function bootstrapGain(test: Labelled[], scores: number[], thresholds: number[], rounds = 2000): [number, number] {
  const subjects = [...new Set(test.map((x) => x.subject))]
  // per subject and threshold: prompts, routed, routed-correct, weak-correct, strong-correct
  const sums = subjects.map((s) => thresholds.map(() => ({ n: 0, routed: 0, correct: 0, weak: 0, strong: 0 })))
  const index = new Map(subjects.map((s, i) => [s, i]))
  test.forEach((x, i) => {
    thresholds.forEach((t, j) => {
      const c = sums[index.get(x.subject)!]![j]!
      const toStrong = scores[i]! >= t
      c.n++
      if (toStrong) c.routed++
      if (toStrong ? x.strong : x.weak) c.correct++
      if (x.weak) c.weak++
      if (x.strong) c.strong++
    })
  })
  // a fixed seed, so the interval is reproducible
  const random = seededRandom(1)
  const gains: number[] = []
  for (let r = 0; r < rounds; r++) {
    const pick = subjects.map(() => Math.floor(random() * subjects.length))
    let total = 0
    thresholds.forEach((_, j) => {
      const a = { n: 0, routed: 0, correct: 0, weak: 0, strong: 0 }
      for (const p of pick) {
        const c = sums[p]![j]!
        a.n += c.n
        a.routed += c.routed
        a.correct += c.correct
        a.weak += c.weak
        a.strong += c.strong
      }
      const share = a.routed / a.n
      total += (a.correct - a.weak - share * (a.strong - a.weak)) / a.n
    })
    gains.push(total / thresholds.length)
  }
  gains.sort((a, b) => a - b)
  return [gains[Math.floor(rounds * 0.025)]!, gains[Math.floor(rounds * 0.975)]!]
}

/**
 * AUC of the score for "the weak model misses and the strong one gets it" (the prompts worth sending up)
 * against all others: 0.5 is no signal.
 */
export function auc(items: Labelled[], scores: number[]): number {
  const order = scores.map((s, i) => ({ s, pos: !items[i]!.weak && items[i]!.strong })).sort((a, b) => a.s - b.s)
  let rankSum = 0
  let positives = 0
  for (let i = 0; i < order.length; ) {
    let j = i
    while (j < order.length && order[j]!.s === order[i]!.s) j++
    const midRank = (i + 1 + j) / 2
    for (let k = i; k < j; k++) if (order[k]!.pos) {
      rankSum += midRank
      positives++
    }
    i = j
  }
  const negatives = order.length - positives
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives)
}

const FEATURES = Object.keys(BUILTIN_WEIGHTS).filter((k) => k !== 'bias') as (keyof PromptFeatures)[]
const EXAM_FEATURES: (keyof PromptFeatures)[] = ['whichOfTheFollowing', 'statementPair']

/**
 * Weights fitted on dev: ridge least squares of the gain of sending a prompt up (strong correct − weak
 * correct, in {-1, 0, 1}) on standardised features. Only the order of scores matters to a threshold.
 */
export function fitWeights(dev: Labelled[], use: (keyof PromptFeatures)[], lambda = 1): FeatureWeights {
  const rows = dev.map((x) => promptFeatures({ messages: [{ role: 'user', content: x.prompt }] }))
  const mean = use.map((k) => rows.reduce((s, r) => s + r[k], 0) / rows.length)
  const sd = use.map((k, j) => Math.sqrt(rows.reduce((s, r) => s + (r[k] - mean[j]!) ** 2, 0) / rows.length) || 1)
  const d = use.length + 1
  const A = Array.from({ length: d }, () => new Array<number>(d).fill(0))
  const b = new Array<number>(d).fill(0)
  rows.forEach((r, i) => {
    const x = [1, ...use.map((k, j) => (r[k] - mean[j]!) / sd[j]!)]
    const y = (dev[i]!.strong ? 1 : 0) - (dev[i]!.weak ? 1 : 0)
    for (let p = 0; p < d; p++) {
      b[p]! += x[p]! * y
      for (let q = 0; q < d; q++) A[p]![q]! += x[p]! * x[q]!
    }
  })
  for (let p = 1; p < d; p++) A[p]![p]! += lambda
  const w = solve(A, b)
  const weights = Object.fromEntries([['bias', 0], ...FEATURES.map((k) => [k, 0])]) as FeatureWeights
  // back to the raw feature scale; the 10x spreads scores over (0, 1) without changing their order
  let bias = w[0]!
  use.forEach((k, j) => {
    weights[k] = (10 * w[j + 1]!) / sd[j]!
    bias -= (w[j + 1]! * mean[j]!) / sd[j]!
  })
  weights.bias = 10 * bias
  return weights
}

/** Gaussian elimination with partial pivoting (the system is small and well conditioned by the ridge). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length
  const M = A.map((row, i) => [...row, b[i]!])
  for (let c = 0; c < n; c++) {
    let p = c
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r
    ;[M[c], M[p]] = [M[p]!, M[c]!]
    for (let r = 0; r < n; r++) {
      if (r === c) continue
      const f = M[r]![c]! / M[c]![c]!
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!
    }
  }
  return M.map((row, i) => row[n]! / row[i]!)
}

export interface VariantResult {
  name: string
  rows: HeldOutRow[]
  /** Mean of accuracy − random over the inner target shares (10%…90%), test half. */
  meanGain: number
  gainInterval: [number, number]
  testAuc: number
  devAuc: number
}

/** Thresholds from dev, results on test, for one scorer. */
export function evaluateScorer(name: string, scorer: DifficultyScorer, dev: Labelled[], test: Labelled[], shares: number[]): VariantResult {
  const score = (x: Labelled) => scorer({ messages: [{ role: 'user', content: x.prompt }] })
  const devScores = dev.map(score)
  const testScores = test.map(score)
  const thresholds = shares.map((s) => thresholdForShare(devScores, s))
  const rows = shares.map((s, i) => evaluateHeldOut(test, testScores, s, thresholds[i]!))
  const meanGain = rows.reduce((s, r) => s + r.accuracy - r.randomAccuracy, 0) / rows.length
  return { name, rows, meanGain, gainInterval: bootstrapGain(test, testScores, thresholds), testAuc: auc(test, testScores), devAuc: auc(dev, devScores) }
}

function main() {
  const args = process.argv.slice(2)
  const json = args.includes('--json')
  const si = args.indexOf('--scorer')
  const scorerName = si >= 0 ? args[si + 1]! : undefined
  const dirArg = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--scorer')
  const dir = resolve(dirArg ?? fileURLToPath(new URL('../../shared/data/routing/mmlu', import.meta.url)))
  const items = loadMmlu(dir)
  const { dev, test, devSubjects, testSubjects } = splitBySubject(items)
  const shares = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]

  const started = performance.now()
  for (const x of items) BUILTIN_SCORER({ messages: [{ role: 'user', content: x.prompt }] })
  const perPromptUs = ((performance.now() - started) * 1000) / items.length

  const noExam = FEATURES.filter((k) => !EXAM_FEATURES.includes(k))
  const variants: [string, DifficultyScorer][] = scorerName
    ? [[scorerName, scorerNamed(scorerName) ?? fail(`no scorer named ${scorerName}`)]]
    : [
        ['built-in (shipped; exam-phrasing features off)', BUILTIN_SCORER],
        ['built-in + exam-phrasing features (the former weights)', featureScorer({ ...BUILTIN_WEIGHTS, whichOfTheFollowing: 0.3, statementPair: 0.8 })],
        ['fitted on dev, without exam-phrasing features', featureScorer(fitWeights(dev, noExam))],
        ['fitted on dev, with exam-phrasing features', featureScorer(fitWeights(dev, FEATURES))]
      ]
  const results = variants.map(([name, scorer]) => evaluateScorer(name, scorer, dev, test, shares))
  const acc = (xs: Labelled[], k: 'weak' | 'strong') => xs.filter((x) => x[k]).length / xs.length
  const summary = {
    dir,
    prompts: items.length,
    dev: { prompts: dev.length, subjects: devSubjects, weak: acc(dev, 'weak'), strong: acc(dev, 'strong') },
    test: { prompts: test.length, subjects: testSubjects, weak: acc(test, 'weak'), strong: acc(test, 'strong') },
    perPromptUs,
    // the weak model's misses that the strong one gets: what a perfect router would send up
    oracle: { share: test.filter((x) => !x.weak && x.strong).length / test.length, accuracy: test.filter((x) => x.weak || x.strong).length / test.length },
    results
  }
  if (json) {
    console.log(JSON.stringify(summary, null, 2))
    return
  }
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`
  const pt = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(2)} pt`
  console.log(`${items.length} prompts from ${dir}; ${perPromptUs.toFixed(1)} µs per prompt (built-in scorer)`)
  console.log(`dev: ${devSubjects.length} subjects, ${dev.length} prompts (weak ${pct(summary.dev.weak)}, strong ${pct(summary.dev.strong)})`)
  console.log(`test: ${testSubjects.length} subjects, ${test.length} prompts (weak ${pct(summary.test.weak)}, strong ${pct(summary.test.strong)}); oracle ${pct(summary.oracle.share)} to strong for ${pct(summary.oracle.accuracy)}`)
  console.log(`test subjects: ${testSubjects.join(', ')}\n`)
  for (const r of results) {
    console.log(`### ${r.name}\n`)
    console.log('| target share (dev) | threshold (dev) | share to strong (test) | accuracy (test) | random, same share | difference |')
    console.log('| ---: | ---: | ---: | ---: | ---: | ---: |')
    for (const row of r.rows) {
      console.log(`| ${pct(row.targetShare)} | ${row.threshold.toFixed(3)} | ${pct(row.testShare)} | ${pct(row.accuracy)} | ${pct(row.randomAccuracy)} | ${pt(row.accuracy - row.randomAccuracy)} |`)
    }
    console.log(`\nmean gain over random ${pt(r.meanGain)} (95% subject bootstrap ${pt(r.gainInterval[0])} … ${pt(r.gainInterval[1])}); AUC test ${r.testAuc.toFixed(3)}, dev ${r.devAuc.toFixed(3)}\n`)
  }
  console.log('| scorer | mean gain over random (test) | 95% interval | AUC test | AUC dev |')
  console.log('| --- | ---: | ---: | ---: | ---: |')
  for (const r of results) console.log(`| ${r.name} | ${pt(r.meanGain)} | ${pt(r.gainInterval[0])} … ${pt(r.gainInterval[1])} | ${r.testAuc.toFixed(3)} | ${r.devAuc.toFixed(3)} |`)
}

const BUILTIN_SCORER = featureScorer(BUILTIN_WEIGHTS)

function fail(message: string): never {
  throw new Error(message)
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main()
