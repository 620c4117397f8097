/**
 * Offline evaluation of the pre-call difficulty router (`router: { kind: score }`) on MMLU prompts with the
 * recorded correctness of a weak model (Mixtral-8x7B-Instruct) and a strong one (GPT-4-1106): for a sweep of
 * thresholds, the share of prompts sent to the strong model against the accuracy reached, next to random
 * routing at the same share. No model is called.
 *
 * Run: `npx tsx bench/router-eval.ts [DATA_DIR] [--scorer NAME] [--json]`
 * (DATA_DIR defaults to ../shared/data/routing/mmlu next to the repository).
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { scorerNamed } from '../src/routing/scorer.js'

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

export interface SweepRow {
  strongShare: number
  threshold: number
  accuracy: number
  randomAccuracy: number
}

/** Accuracy when the prompts scoring highest (a share of them) go to the strong model. */
export function sweep(items: Labelled[], scores: number[], shares: number[]): SweepRow[] {
  const n = items.length
  const weakAcc = items.filter((x) => x.weak).length / n
  const strongAcc = items.filter((x) => x.strong).length / n
  const order = scores.map((s, i) => ({ s, i })).sort((a, b) => b.s - a.s)
  return shares.map((share) => {
    const k = Math.round(share * n)
    const toStrong = new Set(order.slice(0, k).map((o) => o.i))
    let correct = 0
    items.forEach((x, i) => (correct += (toStrong.has(i) ? x.strong : x.weak) ? 1 : 0))
    return {
      strongShare: k / n,
      threshold: k === 0 ? 1 : order[k - 1]!.s,
      accuracy: correct / n,
      // random routing at the same share: the expectation, exactly
      randomAccuracy: weakAcc + (k / n) * (strongAcc - weakAcc)
    }
  })
}

function main() {
  const args = process.argv.slice(2)
  const json = args.includes('--json')
  const si = args.indexOf('--scorer')
  const scorerName = si >= 0 ? args[si + 1]! : 'builtin'
  const dirArg = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--scorer')
  const dir = resolve(dirArg ?? fileURLToPath(new URL('../../shared/data/routing/mmlu', import.meta.url)))
  const scorer = scorerNamed(scorerName)
  if (!scorer) throw new Error(`no scorer named ${scorerName}`)
  const items = loadMmlu(dir)
  const started = performance.now()
  const scores = items.map((x) => scorer({ messages: [{ role: 'user', content: x.prompt }] }))
  const perPromptUs = ((performance.now() - started) * 1000) / items.length
  const shares = [0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]
  const rows = sweep(items, scores, shares)
  // the weak model's misses among the prompts the strong model answers: what a perfect router would send
  const oracleShare = items.filter((x) => !x.weak && x.strong).length / items.length
  const oracleAcc = items.filter((x) => x.weak || x.strong).length / items.length
  const gain = rows.reduce((s, r) => s + (r.accuracy - r.randomAccuracy), 0) / (rows.length - 2)
  if (json) {
    console.log(JSON.stringify({ dir, scorer: scorerName, prompts: items.length, perPromptUs, rows, oracleShare, oracleAcc, meanGainOverRandom: gain }, null, 2))
    return
  }
  console.log(`${items.length} prompts from ${dir}, scorer "${scorerName}" (${perPromptUs.toFixed(1)} µs per prompt)\n`)
  console.log('| share to strong | threshold | accuracy (score router) | accuracy (random, same share) | difference |')
  console.log('| ---: | ---: | ---: | ---: | ---: |')
  for (const r of rows) {
    const pct = (x: number) => `${(x * 100).toFixed(1)}%`
    const diff = (r.accuracy - r.randomAccuracy) * 100
    console.log(`| ${pct(r.strongShare)} | ${r.threshold.toFixed(3)} | ${pct(r.accuracy)} | ${pct(r.randomAccuracy)} | ${diff >= 0 ? '+' : ''}${diff.toFixed(2)} pt |`)
  }
  console.log(`\nMean gain over random at the inner shares: ${(gain * 100).toFixed(2)} pt. Oracle (strong only where the weak model fails and the strong one succeeds): ${(oracleShare * 100).toFixed(1)}% to strong for ${(oracleAcc * 100).toFixed(1)}%.`)
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main()
