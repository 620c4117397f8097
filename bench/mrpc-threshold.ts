/**
 * Chooses the semantic cache's similarity threshold per embedder on MRPC (Microsoft Research Paraphrase
 * Corpus), reading it from ../shared/data/paraphrase/mrpc (or MRPC_DIR) at run time, and measures the
 * in-process index's lookup latency at 100k entries.
 *
 * A pair counts as a would-be cache hit when its cosine similarity clears the threshold (and, in the
 * "+ guard" columns, when the meaning-flip guard finds no negation/number/polar/identifier difference).
 * Precision = share of would-be hits that are real paraphrases: a false hit serves a wrong answer.
 *
 *   npx tsx bench/mrpc-threshold.ts                       # builtin embedder
 *   npx tsx bench/mrpc-threshold.ts --embeddings-url http://127.0.0.1:8080/v1 --model local-embed --api-key sk-...
 *     (any OpenAI-compatible /v1/embeddings, e.g. Sluice serving a llama GGUF embedding model)
 *   npx tsx bench/mrpc-threshold.ts --no-latency          # skip the 100k-entry index measurement
 */
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { meaningFlip } from '../src/cache/guard.js'
import { DEFAULT_THRESHOLDS, embedText, normalize } from '../src/vector/embedders.js'
import { createMemoryIndex } from '../src/vector/memory.js'

const { values: args } = parseArgs({
  options: {
    'embeddings-url': { type: 'string' },
    model: { type: 'string' },
    'api-key': { type: 'string' },
    dimensions: { type: 'string', default: '256' },
    'target-precision': { type: 'string', default: '0.95' },
    'no-latency': { type: 'boolean', default: false }
  }
})

interface Pair {
  label: 0 | 1
  a: string
  b: string
}

const dir = resolve(process.env.MRPC_DIR ?? join(process.cwd(), '../shared/data/paraphrase/mrpc'))
function load(file: string): Pair[] {
  const lines = readFileSync(join(dir, file), 'utf8').replace(/^\uFEFF/, '').split(/\r?\n/).slice(1)
  return lines
    .map((l) => l.split('\t'))
    .filter((c) => c.length >= 5)
    .map((c) => ({ label: c[0] === '1' ? 1 : 0, a: c[3]!, b: c[4]! }))
}

const dims = Number(args.dimensions)
async function embedAll(texts: string[]): Promise<Float32Array[]> {
  if (!args['embeddings-url']) return texts.map((t) => embedText(t, dims))
  const out: Float32Array[] = []
  for (let i = 0; i < texts.length; i += 64) {
    const res = await fetch(`${args['embeddings-url']}/embeddings`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(args['api-key'] ? { authorization: `Bearer ${args['api-key']}` } : {}) },
      body: JSON.stringify({ model: args.model, input: texts.slice(i, i + 64) })
    })
    if (!res.ok) throw new Error(`embeddings: HTTP ${res.status} ${await res.text()}`)
    const body = (await res.json()) as { data: { index: number; embedding: number[] }[] }
    for (const d of body.data.sort((x, y) => x.index - y.index)) out.push(normalize(Float32Array.from(d.embedding)))
  }
  return out
}

interface Scored {
  label: 0 | 1
  sim: number
  flip: boolean
}

async function score(pairs: Pair[]): Promise<Scored[]> {
  const va = await embedAll(pairs.map((p) => p.a))
  const vb = await embedAll(pairs.map((p) => p.b))
  return pairs.map((p, i) => {
    let dot = 0
    for (let d = 0; d < va[i]!.length; d++) dot += va[i]![d]! * vb[i]![d]!
    return { label: p.label, sim: dot, flip: meaningFlip(p.a, p.b) !== undefined }
  })
}

function pr(rows: Scored[], t: number, guard: boolean): { p: number; r: number; hits: number } {
  let tp = 0
  let fp = 0
  const pos = rows.filter((r) => r.label === 1).length
  for (const r of rows) {
    if (r.sim < t || (guard && r.flip)) continue
    if (r.label === 1) tp++
    else fp++
  }
  return { p: tp + fp ? tp / (tp + fp) : NaN, r: tp / pos, hits: tp + fp }
}

const fmt = (x: number) => (Number.isNaN(x) ? '  –  ' : x.toFixed(3))
const thresholds = [0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99]

const name = args['embeddings-url'] ? `upstream ${args.model}` : `builtin (${dims} dims)`
const tune = await score([...load('msr-para-train.tsv'), ...load('msr-para-val.tsv')])
const test = await score(load('msr-para-test.tsv'))
const target = Number(args['target-precision'])

console.log(`MRPC, embedder: ${name}; tune = train+val (${tune.length} pairs, ${tune.filter((r) => r.label).length} paraphrases), test = ${test.length} pairs`)
console.log(`share of pairs the guard flags: paraphrases ${fmt(tune.filter((r) => r.label && r.flip).length / tune.filter((r) => r.label).length)}, non-paraphrases ${fmt(tune.filter((r) => !r.label && r.flip).length / tune.filter((r) => !r.label).length)} (tune)\n`)
console.log('| threshold | tune P | tune R | tune P + guard | tune R + guard | test P + guard | test R + guard | test hits + guard |')
console.log('| --- | --- | --- | --- | --- | --- | --- | --- |')
for (const t of thresholds) {
  const a = pr(tune, t, false)
  const g = pr(tune, t, true)
  const x = pr(test, t, true)
  console.log(`| ${t.toFixed(2)} | ${fmt(a.p)} | ${fmt(a.r)} | ${fmt(g.p)} | ${fmt(g.r)} | ${fmt(x.p)} | ${fmt(x.r)} | ${x.hits} |`)
}
// The default: the lowest threshold whose precision (with the guard) reaches the target on the tuning split,
// and stays there for every higher threshold (a dip above would make the choice fragile).
let chosen: number | undefined
for (const t of [...thresholds].reverse()) {
  const g = pr(tune, t, true)
  if (Number.isNaN(g.p) || g.p >= target) chosen = t
  else break
}
if (chosen === undefined) console.log(`\nno threshold reaches precision ${target} with the guard on the tuning split`)
else {
  const x = pr(test, chosen, true)
  console.log(`\nchosen threshold (precision >= ${target} on tune, with guard): ${chosen.toFixed(2)} → test precision ${fmt(x.p)}, recall ${fmt(x.r)}`)
}

if (!args['no-latency'] && !args['embeddings-url']) {
  // Index latency at 100k entries, all in ONE scope (the worst case: no scope partitioning helps).
  const sentences = [...new Set([...load('msr-para-train.tsv'), ...load('msr-para-val.tsv'), ...load('msr-para-test.tsv')].flatMap((p) => [p.a, p.b]))]
  const texts: string[] = []
  for (let k = 0; texts.length < 100_000; k++) for (const s of sentences) if (texts.length < 100_000) texts.push(k ? `${s} (ticket ${k})` : s)
  const heap0 = process.memoryUsage().heapUsed
  const t0 = performance.now()
  const index = createMemoryIndex({ dimensions: dims, maxEntries: 100_000 })
  for (const [i, t] of texts.entries()) await index.upsert({ id: String(i), vector: embedText(t, dims), scope: 'one', text: t, expiresAt: Date.now() + 3600_000 })
  const buildS = (performance.now() - t0) / 1000
  const heapMb = (process.memoryUsage().heapUsed - heap0) / 1e6
  const queries = sentences.slice(0, 2000).map((s, i) => (i % 2 ? s.toLowerCase() : `Please answer: ${s}`))
  const lat: number[] = []
  let found = 0
  for (const [i, q] of queries.entries()) {
    const start = performance.now()
    const hits = await index.search(embedText(q, dims), { scope: 'one', minScore: DEFAULT_THRESHOLDS.builtin, limit: 5, now: Date.now() })
    const ms = performance.now() - start
    if (i >= 100) lat.push(ms) // first 100 warm the JIT
    if (hits.length) found++
  }
  lat.sort((a, b) => a - b)
  const q = (p: number) => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]!.toFixed(3)
  console.log(`\nin-process index, 100,000 entries in one scope, builtin ${dims}-dim: build ${buildS.toFixed(1)} s, ~${heapMb.toFixed(0)} MB heap`)
  console.log(`lookup (embed + search, minScore ${DEFAULT_THRESHOLDS.builtin}, ${lat.length} queries): p50 ${q(0.5)} ms, p90 ${q(0.9)} ms, p99 ${q(0.99)} ms; ${found}/${queries.length} queries found a neighbour`)
}
