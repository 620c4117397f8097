/**
 * Semantic-lookup micro-benchmark: p50/p99 of one lookup (embed the last user turn with the built-in
 * embedder, search the embedded index, run the meaning-flip guard) with 100k entries in the index.
 *
 *   node --import tsx bench/semantic.ts                 # 100k entries, 2,000 lookups, writes bench/RESULTS.md
 *   node --import tsx bench/semantic.ts --entries 20000 --queries 500 --no-write
 *
 * Two layouts: all entries in one scope (one busy team and prompt shape: the LSH path) and the same entries
 * spread over 100 scopes (each small enough for an exact scan). Queries are half rewordings of stored
 * prompts (should hit) and half new prompts (should miss); recall is reported with the latency.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { machineLine, RESULTS_FILE, writeSection } from './lib/results.js'
import { quantile } from './lib/stats.js'

const { values: flags } = parseArgs({
  options: {
    entries: { type: 'string', default: '100000' },
    queries: { type: 'string', default: '2000' },
    scopes: { type: 'string', default: '100' },
    'no-write': { type: 'boolean', default: false }
  }
})
const entries = Number(flags.entries)
const queries = Number(flags.queries)
const spread = Number(flags.scopes)

const ROOT = join(import.meta.dirname, '..')
const needed = ['src/cache/semantic.ts', 'src/vector/memory.ts', 'src/vector/embedders.ts']
const missing = needed.filter((f) => !existsSync(join(ROOT, f)))
if (missing.length) {
  console.log(`semantic bench skipped: ${missing.join(', ')} not written yet`)
  process.exit(0)
}

const { createSemanticCache } = await import('../src/cache/semantic.js')
const { createMemoryIndex } = await import('../src/vector/memory.js')
const { createBuiltinEmbedder } = await import('../src/vector/embedders.js')

/**
 * Synthetic prompts with a realistic spread: English words (the distinct words of the licence texts every
 * Debian system ships, about 2,000) drawn Zipf-like, so prompts share common words and character trigrams
 * the way real ones do. Falls back to pseudo-words where those texts are absent.
 */
const VOCAB = loadVocabulary()
function loadVocabulary(): string[] {
  const dir = '/usr/share/common-licenses'
  const seen = new Set<string>()
  if (existsSync(dir)) {
    for (const f of readdirSync(dir)) {
      try {
        for (const w of readFileSync(join(dir, f), 'utf8').toLowerCase().split(/[^a-z]+/)) if (w.length > 2) seen.add(w)
      } catch {
        // a folder or unreadable entry: skip it
      }
    }
  }
  if (seen.size >= 500) return [...seen].sort()
  const syl = 'ka lo mi nu pe ra si to vu ze ba de fi go hu ja ke li mo ny'.split(' ')
  return Array.from({ length: 5000 }, (_, r) => syl[r % 20]! + syl[Math.floor(r / 20) % 20]! + syl[Math.floor(r / 400) % 20]!)
}
function words(i: number, n: number): string {
  let x = (i + 1) * 2654435761
  const out: string[] = []
  for (let k = 0; k < n; k++) {
    x = (Math.imul(x ^ (x >>> 13), 1597334677) + k) >>> 0
    const u = (x % 1_000_000) / 1_000_000
    out.push(VOCAB[Math.floor(Math.pow(VOCAB.length, u)) - 1]!)
  }
  return out.join(' ')
}
/** A stored prompt and a rewording of it that should still count as the same question. */
const prompt = (i: number) => `how do I ${words(i, 10)}`
const reworded = (i: number) => `${prompt(i)} please?`

interface Layout {
  name: string
  scopeOf: (i: number) => string
}

async function measure(layout: Layout) {
  const embedder = createBuiltinEmbedder()
  const index = createMemoryIndex({ dimensions: embedder.dimensions!, maxEntries: entries })
  const cache = createSemanticCache({ embedder, index })
  const expiresAt = Date.now() + 3_600_000

  const t0 = performance.now()
  for (let i = 0; i < entries; i++) {
    const query = { scope: layout.scopeOf(i), text: prompt(i) }
    const [vector] = await embedder.embed([query.text])
    await cache.remember(query, vector!, expiresAt)
  }
  const insertUs = ((performance.now() - t0) * 1000) / entries

  // Warm the JIT on lookups that are not measured.
  for (let q = 0; q < 200; q++) await cache.lookup({ scope: layout.scopeOf(q), text: reworded(q) }, { threshold: embedder.defaultThreshold, now: Date.now() })

  const hitLatency: number[] = []
  const missLatency: number[] = []
  let found = 0
  let falseHits = 0
  for (let q = 0; q < queries; q++) {
    const target = Math.floor((q * 7919) % entries)
    const isHit = q % 2 === 0
    const query = isHit ? { scope: layout.scopeOf(target), text: reworded(target) } : { scope: layout.scopeOf(target), text: prompt(entries + q) }
    const s = performance.now()
    const result = await cache.lookup(query, { threshold: embedder.defaultThreshold, now: Date.now() })
    const ms = performance.now() - s
    if (isHit) {
      hitLatency.push(ms)
      if (result.candidates.some((c) => c.text === prompt(target))) found++
    } else {
      missLatency.push(ms)
      if (result.candidates.length > 0) falseHits++
    }
  }
  const all = [...hitLatency, ...missLatency]
  return {
    layout: layout.name,
    entries: await index.size(),
    insertUs,
    p50: quantile(all, 0.5),
    p99: quantile(all, 0.99),
    hitP50: quantile(hitLatency, 0.5),
    missP50: quantile(missLatency, 0.5),
    recall: found / hitLatency.length,
    falseHitRate: falseHits / missLatency.length,
    rssMb: process.memoryUsage.rss() / 2 ** 20
  }
}

const layouts: Layout[] = [
  { name: 'one scope (LSH)', scopeOf: () => 'team:bench' },
  { name: `${spread} scopes (exact scan)`, scopeOf: (i) => `team:${i % spread}` }
]
const rows: Awaited<ReturnType<typeof measure>>[] = []
for (const layout of layouts) {
  const r = await measure(layout)
  rows.push(r)
  console.log(`${r.layout}: ${r.entries} entries, lookup p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms, recall ${(r.recall * 100).toFixed(1)}%`)
}

const fmt = (x: number, d: number) => (Number.isFinite(x) ? x.toFixed(d) : '–')
const body = [
  machineLine(),
  `Prompts: 10 English words drawn Zipf-like from ${VOCAB.length}. Built-in embedder (${createBuiltinEmbedder().dimensions} dimensions), in-process index, ${queries} lookups per layout: half rewordings of stored prompts, half new prompts. A lookup is embed + search + meaning-flip guard. Target (issue 7): p50 ≤ 1 ms at 100k entries.`,
  '',
  '| layout | entries | lookup p50 ms | p99 ms | p50 hit / miss ms | recall of rewordings | false hits | insert µs | RSS MB | p50 ≤ 1 ms |',
  '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |',
  ...rows.map(
    (r) =>
      `| ${r.layout} | ${r.entries} | ${fmt(r.p50, 3)} | ${fmt(r.p99, 3)} | ${fmt(r.hitP50, 3)} / ${fmt(r.missP50, 3)} | ${fmt(r.recall * 100, 1)}% | ${fmt(r.falseHitRate * 100, 1)}% | ${fmt(r.insertUs, 0)} | ${fmt(r.rssMb, 0)} | ${r.p50 <= 1 ? 'yes' : '**no**'} |`
  )
].join('\n')
console.log(`\n${body}`)
if (!flags['no-write']) {
  await writeSection(RESULTS_FILE, 'semantic', '## Semantic lookup (bench/semantic.ts)', body)
  console.log(`wrote ${RESULTS_FILE}`)
}
