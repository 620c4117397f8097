/**
 * Interleaved A/B of the embedded vector index between builds, in-process, on the bench's crowded scope: the
 * prompts `npm run bench` sends (24 words from a 130-word vocabulary, so every prompt looks like every other and
 * the LSH buckets are crowded) stored in one scope, then searched with new prompts, as the gateway's cache misses
 * do. The semantic layer is the largest part of a bench miss (README, Performance) and an A/B of whole gateways
 * cannot resolve a few microseconds of it; this one can, since nothing else runs.
 *
 *   npx tsc -p tsconfig.build.json --outDir node_modules/.ab/base       # a build to compare, inside the repo
 *   node --import tsx bench/index-ab.ts --variants node_modules/.ab/base,dist
 *   node --import tsx bench/index-ab.ts --variants node_modules/.ab/base,dist --insert --entries 25000
 *
 * Each round builds every variant's index afresh from the same vectors (kept across rounds, one index's memory
 * placement biased a same-build A/A by ±5–8 µs), then runs `--searches` searches on each variant in turn (the
 * order alternating by round; the same prompts for every variant within a round), reading `--cold-mb` of other
 * memory before every search, as a gateway's other work empties the CPU caches between its requests. With `--insert` every searched prompt is then inserted,
 * so a full index also evicts, and insert time is reported too. Reports medians and, against the first variant,
 * the median of per-round differences and in how many rounds it was lower (pairedComparison). The same build
 * against itself, 10 rounds, on the 2-core dev VM: paired medians up to ±11 µs of ~100 µs searches, and up to
 * 21 µs between two copies of one build in a three-variant run (pinned too), so read search effects under ~20 %
 * from several runs; inserts resolve a few µs (14–16 of 16 rounds for a 5 µs change).
 */
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { promptWords } from './lib/bodies.js'
import { describePaired, median, pairedComparison, roundOrder } from './lib/stats.js'
import { ROOT } from './lib/targets.js'

interface IndexModule {
  createMemoryIndex(opts: { dimensions: number; maxEntries?: number }): {
    upsert(e: { id: string; vector: Float32Array; scope: string; text: string; expiresAt: number }): Promise<void>
    search(v: Float32Array, q: { scope: string; minScore: number; limit: number; now: number }): Promise<unknown[]>
  }
}

export interface IndexAbOptions {
  /** Build folders (dist/ or a copy under node_modules/.ab/ so its imports resolve). */
  variants: string[]
  entries: number
  rounds: number
  searches: number
  /** Insert each searched prompt after its search (a full index evicts its oldest entry). */
  insert: boolean
  /** MB of other memory read before each search (0: everything stays cached). */
  coldMb: number
}

/** One variant's round: µs per search, and per insert with `insert`. */
interface RoundTimes {
  search: number
  insert?: number
}

export interface IndexAbResult {
  variant: string
  /** µs per search, one value per round. */
  search: number[]
  /** µs per insert, one value per round (empty without `insert`). */
  insert: number[]
}

/**
 * Runs the A/B and returns each variant's per-round figures.
 *
 * @example
 * const [base, other] = await indexAb({ variants: ['node_modules/.ab/base', 'dist'], entries: 25_000, rounds: 10, searches: 2_000, insert: false, coldMb: 4 })
 */
export async function indexAb(opts: IndexAbOptions): Promise<IndexAbResult[]> {
  const { embedText } = await importFrom<{ embedText: EmbedText }>(opts.variants[0]!, 'src/vector/embedders.js')
  const modules: IndexModule[] = []
  for (const v of opts.variants) modules.push(await importFrom<IndexModule>(v, 'src/vector/memory.js'))
  const stored = Array.from({ length: opts.entries }, (_, k) => embedText(promptWords(k), 256))
  const results: IndexAbResult[] = opts.variants.map((variant) => ({ variant, search: [], insert: [] }))
  for (let r = 0; r < opts.rounds; r++) {
    // the searched prompts differ by round and are the same for every variant within one: paired on like queries
    const first = opts.entries + 1_000 + r * opts.searches
    for (const i of roundOrder(opts.variants.length, r)) {
      const times = await timeRound(modules[i]!, embedText, stored, opts, first)
      results[i]!.search.push(times.search)
      if (times.insert !== undefined) results[i]!.insert.push(times.insert)
    }
  }
  return results
}

const SCOPE = 'team:bench'

type EmbedText = (text: string, dims: number) => Float32Array
const importFrom = async <T>(variant: string, file: string): Promise<T> => (await import(pathToFileURL(resolve(ROOT, variant, file)).href)) as T

/**
 * One round of one variant: a fresh index filled with `stored`, then `opts.searches` searches for new prompts
 * (numbered from `first`), each after reading `opts.coldMb` of other memory, each then inserted with `insert`.
 */
async function timeRound(mod: IndexModule, embedText: EmbedText, stored: Float32Array[], opts: IndexAbOptions, first: number): Promise<RoundTimes> {
  const expiresAt = Date.now() + 24 * 3600_000
  // a fresh index every round: where one index's arrays land in memory moved an A/A by ±5–8 µs when kept
  const index = mod.createMemoryIndex({ dimensions: 256, maxEntries: opts.entries })
  for (let k = 0; k < stored.length; k++) await index.upsert({ id: `e${k}`, vector: stored[k]!, scope: SCOPE, text: 't', expiresAt })
  const cold = new Float64Array((opts.coldMb * 1024 * 1024) / 8)
  let sink = 0
  let n = first
  let searching = 0
  let inserting = 0
  for (let q = 0; q < opts.searches; q++) {
    for (let j = 0; j < cold.length; j += 8) sink += cold[j]!
    const id = n++
    const vector = embedText(promptWords(id), 256)
    const t0 = performance.now()
    await index.search(vector, { scope: SCOPE, minScore: 0.85, limit: 5, now: Date.now() })
    const t1 = performance.now()
    if (opts.insert) await index.upsert({ id: `q${id}`, vector, scope: SCOPE, text: 't', expiresAt })
    inserting += performance.now() - t1
    searching += t1 - t0
  }
  if (sink === -1) console.log(sink) // keeps the cold reads
  return { search: (searching * 1000) / opts.searches, ...(opts.insert ? { insert: (inserting * 1000) / opts.searches } : {}) }
}

/** One line per variant: medians, and against the first the paired median and the rounds lower. */
export function describeIndexAb(results: IndexAbResult[]): string[] {
  const line = (what: string, pick: (r: IndexAbResult) => number[]) =>
    results.map((r, i) => {
      const own = `${r.variant}: ${what} median ${median(pick(r)).toFixed(1)} µs`
      if (i === 0) return own
      return `${own}; ${describePaired(pairedComparison(pick(results[0]!), pick(r)), results[0]!.variant)}`
    })
  return [...line('search', (r) => r.search), ...(results[0]!.insert.length ? line('insert', (r) => r.insert) : [])]
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values: flags } = parseArgs({
    options: {
      variants: { type: 'string', default: 'dist' },
      entries: { type: 'string', default: '25000' },
      rounds: { type: 'string', default: '10' },
      searches: { type: 'string', default: '2000' },
      insert: { type: 'boolean', default: false },
      'cold-mb': { type: 'string', default: '4' }
    }
  })
  const results = await indexAb({
    variants: flags.variants!.split(',').map((v) => v.trim()),
    entries: Number(flags.entries),
    rounds: Number(flags.rounds),
    searches: Number(flags.searches),
    insert: flags.insert!,
    coldMb: Number(flags['cold-mb'])
  })
  console.log(`${flags.entries} bench prompts in one scope, ${flags.rounds} interleaved rounds of ${flags.searches} searches${flags.insert ? ' (each then inserted)' : ''}, ${flags['cold-mb']} MB read before each:`)
  for (const l of describeIndexAb(results)) console.log(`  ${l}`)
}
