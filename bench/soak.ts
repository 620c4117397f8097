/**
 * Soak: Sluice at a fixed rate for a bounded time with mixed traffic (cache misses, exact-cache hits,
 * streams, budget rejections), sampling RSS, heap and event-loop lag from its /metrics. Fails (exit 1)
 * on any unexpected status or transport error, on event-loop lag, or when memory keeps growing after the
 * warm-up.
 *
 * A soak must find leaks, not the legitimate fill of bounded structures: the gateway runs with small
 * explicit bounds (bench/config/soak-*.yaml: ledger, exact cache, semantic index) that fill during the
 * warm-up (the first third), and only the samples after it are judged (see `judge`). Nothing is forced:
 * no manual GC, no --expose-gc; the gateway is only sampled.
 *
 *   node --import tsx bench/soak.ts                      # 10 minutes at 100 rps, memory store
 *   node --import tsx bench/soak.ts --duration 30s       # CI size (npm run soak:ci)
 *   node --import tsx bench/soak.ts --store redis --rate 200
 *   node --import tsx bench/soak.ts --duration 10m --write   # also rewrite the soak section of bench/RESULTS.md
 *
 * Traffic goes to 127.0.0.1 only: a fake upstream, a throwaway redis-server and Sluice, each its own process,
 * all stopped when the soak ends, fails, or gets SIGINT/SIGTERM.
 */
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { promptWords } from './lib/bodies.js'
import { rssBytes, type Child } from './lib/procs.js'
import { machineLine, RESULTS_FILE, writeSection } from './lib/results.js'
import { median, quantile } from './lib/stats.js'
import { BENCH_KEY, buildSluice, sluiceAvailable, startBackends, startSluice, TIGHT_KEY } from './lib/targets.js'

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '10m' },
    rate: { type: 'string', default: '100' },
    store: { type: 'string', default: 'memory' },
    sample: { type: 'string' },
    warmup: { type: 'string', default: '0.33' },
    'max-duration': { type: 'string' },
    'max-rss-growth-mb': { type: 'string', default: '10' },
    'max-heap-growth-mb': { type: 'string', default: '2' },
    'max-lag-ms': { type: 'string', default: '250' },
    'samples-out': { type: 'string' },
    write: { type: 'boolean', default: false },
    'no-build': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false }
  }
})
if (flags.help) {
  console.log(
    'usage: node --import tsx bench/soak.ts [--duration 10m|30s] [--rate RPS] [--store memory|redis] [--sample 0.5s] [--warmup 0.33] [--max-duration 2×duration]\n' +
      '         [--max-rss-growth-mb 10] [--max-heap-growth-mb 2] [--max-lag-ms 250] [--samples-out FILE.json] [--write] [--no-build]'
  )
  process.exit(0)
}

/** "30s", "10m", "1h" or plain seconds → seconds. */
function seconds(text: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim())
  if (!m) throw new Error(`--${flag}: expected a duration like 30s, 10m or 1h, got "${text}"`)
  return Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1)
}

const durationS = seconds(flags.duration!, 'duration')
const rate = Number(flags.rate)
// The live heap is read in the first sample after a major collection, which holds what was promoted since:
// about 0.5 MB in 0.5 s at 100 rps. Scraping /metrics twice a second costs the gateway nothing measurable.
const sampleS = flags.sample ? seconds(flags.sample, 'sample') : 0.5
const warmup = Number(flags.warmup)
const maxDurationS = flags['max-duration'] ? seconds(flags['max-duration'], 'max-duration') : 2 * durationS
/** Major collections the judged part needs before the heap is judged on them (see the extension in soak). */
const MIN_MAJOR_GCS = 3
/** Seconds the soak actually sent traffic for (set when it ends). */
let ranS = durationS
const fmtS = (x: number) => `${Math.round(x)} s`
const limits = {
  rssMb: Number(flags['max-rss-growth-mb']),
  heapMb: Number(flags['max-heap-growth-mb']),
  lagMs: Number(flags['max-lag-ms'])
}
if (flags.store !== 'memory' && flags.store !== 'redis') throw new Error(`--store: memory or redis, got "${flags.store}"`)
if (!(rate > 0 && durationS > 0)) throw new Error('--rate and --duration must be positive')
if (!(warmup >= 0 && warmup < 0.9)) throw new Error('--warmup: the fraction of the run not judged, 0 to 0.9')

/** One request's kind, chosen by its index: 60% misses, 20% hits, 10% streams, 10% over-budget key. */
type Kind = 'miss' | 'hit' | 'stream' | 'budget'
const kindOf = (i: number): Kind => {
  const k = i % 20
  return k < 12 ? 'miss' : k < 16 ? 'hit' : k < 18 ? 'stream' : 'budget'
}

const SYSTEM = 'You are a careful assistant inside an agent loop. Answer briefly, use the tools when they help.'

/**
 * A chat body with a unique user prompt of about 3,200 characters (500 words). Agent prompts are long (tool
 * results, file contents), and long prompts fill the gateway's token-count memo (2M characters per encoding,
 * src/tokens.ts, not configurable) in about 650 misses, inside the warm-up like the other bounded structures;
 * with the bench's 160-character prompts it would still be filling 2.5 minutes in.
 */
function soakBody(model: string, stream: boolean, i: number): string {
  return JSON.stringify({
    model,
    max_tokens: 16,
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
    messages: [
      { role: 'system', content: SYSTEM },
      { role: 'user', content: promptWords(i, 500) }
    ]
  })
}

interface Sample {
  t: number
  rssMb: number
  heapMb: number
  lagMs: number
  lagP99Ms: number
  /** Old space used: what survives young collections; it only drops at a major (mark-compact) collection. */
  oldMb: number
  heapTotalMb: number
  externalMb: number
  /** Major collections so far (prom-client's GC histogram count). */
  majorGcs: number
  semanticEntries: number
}

/** Read one gauge's value from the Prometheus text format (first series without or with labels). */
function gauge(text: string, name: string, label = ''): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*${label}[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text)
  return m ? Number(m[1]) : NaN
}

async function main(): Promise<number> {
  if (!sluiceAvailable()) {
    console.error('soak: src/cli.ts does not exist yet; nothing to soak')
    return 1
  }
  const children: Child[] = []
  const stopAll = () => Promise.allSettled(children.splice(0).reverse().map((c) => c.stop()))
  // a CI runner's timeout or ^C must not leave the fake, Redis or Sluice running: stop them gracefully on a
  // signal, and kill whatever is still alive however this process ends (a throw outside main included)
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) process.once(signal, () => void stopAll().then(() => process.exit(code)))
  process.once('exit', () => {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL')
  })
  try {
    if (!flags['no-build']) await buildSluice()
    const { upstream, redisUrl } = await startBackends(flags.store!, children)
    const sluice = await startSluice(`soak-${flags.store}`, { upstream, redisUrl })
    children.push(sluice)
    const ok = await soak(sluice)
    if (sluice.proc.exitCode !== null || sluice.proc.signalCode !== null) {
      console.log(`\nSOAK FAILED: Sluice exited during the soak (${sluice.proc.exitCode ?? sluice.proc.signalCode}):\n${sluice.tail()}`)
      return 1
    }
    return ok
  } finally {
    await stopAll()
  }
}

async function soak(sluice: Child): Promise<number> {
  const origin = `http://127.0.0.1:${sluice.port}`
  const pool = new Pool(origin, { connections: 128, pipelining: 1 })
  const bodies = {
    miss: (i: number) => soakBody('gpt-4o-mini', false, i),
    stream: (i: number) => soakBody('bench-trickle', true, i)
  }
  const hitBodies = Array.from({ length: 8 }, (_, k) => soakBody('gpt-4o-mini', false, 900_000_000 + k))
  const headers = (key: string) => ({ 'content-type': 'application/json', authorization: `Bearer ${key}` })

  const counts: Record<string, number> = {}
  const unexpected: string[] = []
  const latencies: number[] = []
  let settled = 0
  const count = (label: string) => (counts[label] = (counts[label] ?? 0) + 1)

  const fire = async (i: number, due: number) => {
    const kind = kindOf(i)
    const body = kind === 'hit' ? hitBodies[i % hitBodies.length]! : kind === 'stream' ? bodies.stream(i) : bodies.miss(i)
    try {
      const res = await pool.request({
        path: '/v1/chat/completions',
        method: 'POST',
        headers: headers(kind === 'budget' ? TIGHT_KEY : BENCH_KEY),
        body,
        headersTimeout: 30_000,
        bodyTimeout: 30_000
      })
      const text = await res.body.text()
      latencies.push(performance.now() - due)
      count(`${kind} ${res.statusCode}`)
      // The tight team may spend its tiny budget on its first requests; after that it must be refused with a 4xx.
      const ok =
        kind === 'budget'
          ? res.statusCode === 200 || res.statusCode === 402 || res.statusCode === 429
          : res.statusCode === 200 && (kind !== 'stream' || text.includes('data: [DONE]'))
      if (!ok && unexpected.length < 20) unexpected.push(`${kind}: HTTP ${res.statusCode} ${text.slice(0, 160)}`)
      if (!ok) count('unexpected')
    } catch (err) {
      count('unexpected')
      count(`${kind} transport error`)
      if (unexpected.length < 20) unexpected.push(`${kind}: ${String(err)}`)
    } finally {
      settled++
    }
  }

  const samples: Sample[] = []
  const takeSample = async (t: number) => {
    try {
      const res = await pool.request({ path: '/metrics', method: 'GET', headersTimeout: 5_000, bodyTimeout: 5_000 })
      const text = await res.body.text()
      const rss = gauge(text, 'process_resident_memory_bytes')
      samples.push({
        t,
        rssMb: (Number.isFinite(rss) ? rss : rssBytes(sluice.pid)) / 2 ** 20,
        heapMb: gauge(text, 'nodejs_heap_size_used_bytes') / 2 ** 20,
        lagMs: gauge(text, 'nodejs_eventloop_lag_seconds') * 1000,
        lagP99Ms: gauge(text, 'nodejs_eventloop_lag_p99_seconds') * 1000,
        oldMb: gauge(text, 'nodejs_heap_space_size_used_bytes', 'space="old"') / 2 ** 20,
        heapTotalMb: gauge(text, 'nodejs_heap_size_total_bytes') / 2 ** 20,
        externalMb: gauge(text, 'nodejs_external_memory_bytes') / 2 ** 20,
        majorGcs: gauge(text, 'nodejs_gc_duration_seconds_count', 'kind="major"'),
        semanticEntries: gauge(text, 'sluice_cache_semantic_index_entries')
      })
    } catch (err) {
      count('unexpected')
      if (unexpected.length < 20) unexpected.push(`/metrics: ${String(err)}`)
    }
  }

  const interval = 1000 / rate
  const warmupS = warmup * durationS
  // A heap judgement needs major collections after the warm-up, and V8 decides when they run (every 7–13 s
  // at 100 rps here, but a run may see none for 30 s). A run that has too few by its end goes on at the same
  // rate, 5 s at a time, up to --max-duration; the report says so.
  let endS = durationS
  const t0 = performance.now()
  let sent = 0
  let nextSample = 0
  let nextLog = 0
  console.log(`soak: ${durationS}s at ${rate} rps (${Math.round(rate * durationS)} requests), ${flags.store} store, sampling every ${sampleS}s, first ${fmtS(warmupS)} not judged; extended up to ${maxDurationS}s until ${MIN_MAJOR_GCS} major GCs are seen after the warm-up`)
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now()
      const elapsed = (now - t0) / 1000
      if (elapsed >= endS && endS < maxDurationS && livePoints(samples, warmupS).length < MIN_MAJOR_GCS) {
        endS = Math.min(maxDurationS, endS + 5)
        console.log(`  ${elapsed.toFixed(0)}s: ${livePoints(samples, warmupS).length} major GCs after the warm-up so far; going on to ${endS}s`)
      }
      const total = Math.round(rate * endS)
      const due = Math.min(total, Math.floor((now - t0) / interval) + 1)
      while (sent < due) {
        void fire(sent, t0 + sent * interval)
        sent++
      }
      if (elapsed >= nextSample && sent < total) {
        nextSample += sampleS
        void takeSample(elapsed)
      }
      if (elapsed >= nextLog) {
        nextLog += Math.max(10, durationS / 10)
        const last = samples.at(-1)
        console.log(`  ${elapsed.toFixed(0)}s: sent ${sent}, done ${settled}, unexpected ${counts.unexpected ?? 0}` + (last ? `, RSS ${last.rssMb.toFixed(0)} MB, heap ${last.heapMb.toFixed(0)} MB, lag ${last.lagMs.toFixed(1)} ms, semantic entries ${last.semanticEntries}` : ''))
      }
      const finished = sent >= total && elapsed >= endS
      if ((finished && settled >= sent) || elapsed > endS + 30) return resolve()
      setTimeout(tick, finished ? 10 : 1)
    }
    tick()
  })
  ranS = (performance.now() - t0) / 1000
  const hung = sent - settled
  if (hung > 0) {
    counts.unexpected = (counts.unexpected ?? 0) + hung
    unexpected.push(`${hung} requests had no answer 30 s after the soak ended`)
  }
  await takeSample((performance.now() - t0) / 1000)
  await pool.destroy()
  samples.sort((a, b) => a.t - b.t)
  if (flags['samples-out']) await writeFile(flags['samples-out'], JSON.stringify({ durationS, ranS, rate, store: flags.store, samples }, null, 1))
  return report(samples, counts, unexpected, latencies)
}

interface Growth {
  /** Where judging starts: the first major collection after the warm-up (the warm-up's end without one). */
  fromS: number
  /** Samples judged. */
  n: number
  /** Seconds the judged samples span. */
  spanS: number
  /** RSS trend over the judged samples, MB per minute (Theil–Sen). */
  rssSlope: number
  /** What that trend adds over the judged span, MB: the number held to --max-rss-growth-mb. */
  rssMb: number
  /** Old space right after each major collection in the judged part ("live heap" points). */
  live: Array<{ t: number; mb: number }>
  /** Live heap trend over those points, MB per minute (Theil–Sen); NaN with fewer than two. */
  heapSlope: number
  /** What that trend adds over the judged span, MB: the number held to --max-heap-growth-mb. */
  heapMb: number
}

/** Old space in the first sample after each major collection from `fromS` on: the live heap, plus what was promoted since. */
function livePoints(samples: Sample[], fromS: number): Array<{ t: number; mb: number }> {
  const gcs = (s: Sample | undefined) => (s && Number.isFinite(s.majorGcs) ? s.majorGcs : 0)
  const sorted = [...samples].sort((a, b) => a.t - b.t)
  return sorted.flatMap((s, i) => (s.t >= fromS && i > 0 && gcs(s) > gcs(sorted[i - 1]) ? [{ t: s.t, mb: s.oldMb }] : []))
}

/** Median of the pairwise slopes (Theil–Sen): a trend that a few outlying samples cannot bend. */
function robustSlope(xs: number[], ys: number[]): number {
  const slopes: number[] = []
  for (let i = 0; i < xs.length; i++) for (let j = i + 1; j < xs.length; j++) if (xs[j]! !== xs[i]!) slopes.push((ys[j]! - ys[i]!) / (xs[j]! - xs[i]!))
  return slopes.length ? median(slopes) : 0
}

/**
 * Growth from the first major collection after the warm-up, as a trend: the Theil–Sen slope (the median of all pairwise slopes, which a few
 * outlying samples cannot bend) times the judged span.
 *
 * RSS: over every judged sample. Heap: heap used is a sawtooth (garbage piles up between collections; sampled
 * at random it swings by 10+ MB), so it is judged at the points where it says what is live: old space in the
 * first sample after each major collection (prom-client's GC count went up). A leak raises those points; a
 * cache filling to its bound raises them only until it is full. The points still carry what was promoted
 * between the collection and the sample (up to about 0.5 MB at 100 rps and 0.5 s sampling) and V8's floating
 * garbage: about ±0.5 MB. Fewer than two points: the heap is not judged (the soak extends itself to avoid
 * that; see `soak`).
 */
function judge(samples: Sample[], warmupS: number): Growth {
  const live = livePoints(samples, warmupS)
  // Judging starts at a clean point: the first major collection after the warm-up. V8 may run none for the
  // first minute (old space and RSS then climb with garbage, 50+ MB) and shrink the heap at the next one.
  const fromS = live[0]?.t ?? warmupS
  const steady = samples.filter((s) => s.t >= fromS)
  const n = steady.length
  const spanS = n ? steady.at(-1)!.t - steady[0]!.t : 0
  const rssSlope = n >= 8 ? robustSlope(steady.map((s) => s.t / 60), steady.map((s) => s.rssMb)) : NaN
  const heapSlope = live.length >= 2 ? robustSlope(live.map((p) => p.t / 60), live.map((p) => p.mb)) : NaN
  return { fromS, n, spanS, rssSlope, rssMb: (rssSlope * spanS) / 60, live, heapSlope, heapMb: (heapSlope * spanS) / 60 }
}

async function report(samples: Sample[], counts: Record<string, number>, unexpected: string[], latencies: number[]): Promise<number> {
  const warmupS = warmup * durationS
  const g = judge(samples, warmupS)
  const steady = samples.filter((s) => s.t >= g.fromS)
  const lags = samples.map((s) => s.lagMs).filter(Number.isFinite)
  const maxLag = Math.max(...lags)
  const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–')
  const lines: string[] = []
  const say = (line: string) => {
    lines.push(line)
    console.log(line)
  }

  console.log('\nresponses:')
  for (const [k, v] of Object.entries(counts).sort()) console.log(`  ${k}: ${v}`)
  say(`latency from due time: p50 ${fmt(median(latencies), 2)} ms, p99 ${fmt(quantile(latencies, 0.99), 2)} ms, max ${fmt(quantile(latencies, 1), 1)} ms`)
  say(`ran ${fmt(ranS, 0)} s${ranS > durationS + 1 ? ` (extended from ${durationS} s to see ${MIN_MAJOR_GCS} major GCs after the warm-up)` : ''}; samples: ${samples.length}, ${g.n} judged (from ${fmt(g.fromS, 1)} s, the first major GC after ${fmt(warmupS, 0)} s of warm-up, spanning ${fmt(g.spanS, 0)} s); semantic index entries when judging starts ${steady[0]?.semanticEntries ?? '–'}, at the end ${samples.at(-1)?.semanticEntries ?? '–'}`)
  say(`RSS: when judging starts ${fmt(steady[0]?.rssMb ?? NaN, 0)} MB, end ${fmt(samples.at(-1)?.rssMb ?? NaN, 0)} MB, max ${fmt(Math.max(...samples.map((s) => s.rssMb)), 0)} MB; trend ${fmt(g.rssSlope, 2)} MB/min = ${fmt(g.rssMb)} MB over the judged ${fmt(g.spanS, 0)} s (limit ${limits.rssMb})`)
  const mbs = g.live.map((p) => p.mb.toFixed(1))
  const listed = mbs.length > 12 ? `${mbs.slice(0, 3).join(', ')} … ${mbs.slice(-3).join(', ')}; range ${fmt(Math.min(...g.live.map((p) => p.mb)))}–${fmt(Math.max(...g.live.map((p) => p.mb)))}` : mbs.join(', ')
  say(`live heap (old space after each major GC, ${g.live.length} judged: ${listed} MB): trend ${fmt(g.heapSlope, 2)} MB/min = ${fmt(g.heapMb)} MB over the judged ${fmt(g.spanS, 0)} s (limit ${limits.heapMb}); heap used max ${fmt(Math.max(...samples.map((s) => s.heapMb)), 0)} MB, heap total at the end ${fmt(samples.at(-1)?.heapTotalMb ?? NaN, 0)} MB`)
  say(`event-loop lag: median ${fmt(median(lags), 2)} ms, max ${fmt(maxLag, 2)} ms (limit ${limits.lagMs}), p99 (prom-client) max ${fmt(Math.max(...samples.map((s) => s.lagP99Ms).filter(Number.isFinite)), 2)} ms`)

  const failures: string[] = []
  if ((counts.unexpected ?? 0) > 0) failures.push(`${counts.unexpected} unexpected responses or errors:\n    ${unexpected.join('\n    ')}`)
  if (g.n < 8) failures.push(`only ${g.n} samples after warm-up; run longer or sample more often (--sample)`)
  if (g.rssMb > limits.rssMb) failures.push(`RSS grows ${fmt(g.rssSlope, 2)} MB/min after the warm-up: ${fmt(g.rssMb)} MB over ${fmt(g.spanS, 0)} s (limit ${limits.rssMb} MB)`)
  if (g.live.length < 2) console.log(`warning: live heap not judged: ${g.live.length} major GC(s) after the warm-up in ${fmt(ranS, 0)} s (RSS judged from the warm-up's end); run longer`)
  if (g.heapMb > limits.heapMb) failures.push(`live heap grows ${fmt(g.heapSlope, 2)} MB/min after the warm-up: ${fmt(g.heapMb)} MB over ${fmt(g.spanS, 0)} s (limit ${limits.heapMb} MB)`)
  const rejected = (counts['budget 402'] ?? 0) + (counts['budget 429'] ?? 0)
  if (rejected === 0) failures.push('no budget rejection at all: the over-budget key was always served (is budget enforcement wired in?)')
  if (!(maxLag <= limits.lagMs)) failures.push(`event-loop lag reached ${fmt(maxLag)} ms (limit ${limits.lagMs} ms)`)
  const verdict = failures.length ? `FAILED:\n  - ${failures.join('\n  - ')}` : 'passed: no unexpected responses, no memory growth after the warm-up, event loop responsive'
  console.log(`\nsoak ${verdict}`)
  if (flags.write) await writeSoak(counts, lines, failures.length === 0)
  return failures.length ? 1 : 0
}

/** The soak section of bench/RESULTS.md (`--write`). */
async function writeSoak(counts: Record<string, number>, lines: string[], passed: boolean): Promise<void> {
  const body = [
    machineLine(),
    `Settings: ${durationS} s at ${rate} rps (ran ${Math.round(ranS)} s), ${flags.store} store (bench/config/soak-${flags.store}.yaml), sampled every ${sampleS} s, first ${Math.round(warmup * 100)}% not judged.`,
    '',
    `Responses: ${Object.entries(counts).sort().map(([k, v]) => `${k}: ${v}`).join(', ')}.`,
    '',
    ...lines.map((l) => `- ${l}`),
    '',
    `Verdict: ${passed ? 'passed' : 'FAILED'}.`
  ].join('\n')
  await writeSection(RESULTS_FILE, 'soak', '## Soak (bench/soak.ts)', body)
}

process.exitCode = await main().catch((err: unknown) => {
  console.error(err)
  return 1
})
