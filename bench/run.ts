/**
 * The benchmark: Sluice side by side with the floor (a bare undici pass-through proxy) and, when installed,
 * a peer gateway, all against one fast fake upstream. Targets run interleaved (A B C, A B C…) for several
 * rounds because absolute numbers on shared machines drift; the report gives medians and ratios to the floor.
 *
 *   npm run bench                 # full: about 22 minutes
 *   npm run bench -- --quick      # about 1 minute
 *   npm run bench -- --duration 5 --rounds 3 --connections 32 --rate 1000 --only floor,sluice-memory
 *
 * Writes bench/RESULTS.md (the part between the bench markers; notes around it are kept) and
 * bench/results.json (every sample). Linux only: CPU time and RSS come from /proc.
 */
import { writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { chatBody } from './lib/bodies.js'
import { closedLoop, loadGenerator, openLoop, streamTtfb, type ClosedLoopResult, type OpenLoopResult, type RequestSpec, type StreamResult } from './lib/load.js'
import { cpuMicros, rssBytes, sampleRss, startRedis, type Child } from './lib/procs.js'
import { machineLine, RESULTS_FILE, writeSection } from './lib/results.js'
import { median } from './lib/stats.js'
import { BENCH_HEADERS, buildSluice, peerAvailable, sluiceAvailable, startFake, startFloor, startPeer, startReference, startSluice, upstreamModel } from './lib/targets.js'

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    duration: { type: 'string' },
    rounds: { type: 'string' },
    warmup: { type: 'string' },
    connections: { type: 'string', default: '32' },
    rate: { type: 'string', default: '1000' },
    'open-warmup': { type: 'string', default: '1' },
    'stream-n': { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string', default: RESULTS_FILE },
    'no-build': { type: 'boolean', default: false },
    // the closed loop's load generator: autocannon (as every run before the twenty-seventh session) or wrk
    load: { type: 'string', default: 'autocannon' },
    help: { type: 'boolean', default: false }
  }
})
if (flags.help) {
  console.log('usage: npm run bench -- [--quick] [--duration S] [--rounds N] [--warmup S] [--connections C] [--rate RPS] [--open-warmup S] [--stream-n N] [--only a,b] [--out FILE] [--no-build] [--load autocannon|wrk]')
  process.exit(0)
}

const settings = {
  seconds: Number(flags.duration ?? (flags.quick ? 2 : 8)),
  rounds: Number(flags.rounds ?? (flags.quick ? 2 : 5)),
  warmupSeconds: Number(flags.warmup ?? (flags.quick ? 1 : 3)),
  connections: Number(flags.connections),
  rate: Number(flags.rate),
  openWarmupSeconds: Number(flags['open-warmup']),
  streamN: Number(flags['stream-n'] ?? (flags.quick ? 40 : 150))
}
for (const [k, v] of Object.entries(settings)) {
  // the open loop's warm-up may be 0 (count from the first request); everything else must be positive
  const least = k === 'openWarmupSeconds' ? 0 : Number.MIN_VALUE
  if (!Number.isFinite(v) || v < least) throw new Error(`--${k}: expected a ${least === 0 ? 'non-negative' : 'positive'} number, got ${v}`)
}

const generator = loadGenerator(flags.load)

/** The fast model alias (the same name upstream). */
const FAST = 'gpt-4o-mini'

interface Workload {
  name: string
  /** Which process's CPU and RSS to read; undefined for direct calls to the fake. */
  child?: Child
  origin: string
  /** Model names as this target knows them (a gateway maps its public names to the upstream ones). */
  models: { fast: string; trickle: string }
  mode: 'unique' | 'same'
  closed: boolean
  open: boolean
  stream: boolean
  note: string
}

interface Samples {
  closed: (ClosedLoopResult & { cpuUsPerReq: number; rssPeakMb: number })[]
  open: OpenLoopResult[]
  stream: StreamResult[]
}

const children: Child[] = []
let shuttingDown = false
async function stopAll(): Promise<void> {
  shuttingDown = true
  await Promise.allSettled(children.reverse().map((c) => c.stop()))
}
process.on('SIGINT', () => void stopAll().then(() => process.exit(130)))

const spec = (w: Workload, stream: boolean): RequestSpec => ({
  origin: w.origin,
  path: '/v1/chat/completions',
  headers: BENCH_HEADERS,
  body: chatBody({ model: stream ? w.models.trickle : w.models.fast, mode: stream ? 'unique' : w.mode, stream })
})

async function measureClosed(w: Workload, seconds: number, offset: number) {
  const pid = w.child?.pid
  const cpu0 = pid ? cpuMicros(pid) : 0
  const rss = pid ? sampleRss(pid) : undefined
  const s = spec(w, false)
  // Offset the request counter each run so "unique" bodies never repeat across runs (no accidental hits).
  const r = await closedLoop({ ...s, body: (i) => s.body(i + offset) }, { connections: settings.connections, seconds, generator })
  const cpu = pid ? cpuMicros(pid) - cpu0 : NaN
  return { ...r, cpuUsPerReq: r.requests > 0 ? cpu / r.requests : NaN, rssPeakMb: rss ? rss.stop() / 2 ** 20 : NaN }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function main(): Promise<void> {
  const fake = await startFake()
  children.push(fake)
  const upstream = `http://127.0.0.1:${fake.port}`
  const workloads: Workload[] = []
  const skipped: string[] = []
  const plain = { fast: upstreamModel(FAST), trickle: upstreamModel('bench-trickle') }
  const gateway = { fast: FAST, trickle: 'bench-trickle' }

  workloads.push({ name: 'direct', origin: upstream, models: plain, mode: 'unique', closed: false, open: true, stream: true, note: 'the fake upstream itself, no proxy (latency baseline)' })
  const floor = await startFloor(upstream)
  children.push(floor)
  workloads.push({ name: 'floor', child: floor, origin: `http://127.0.0.1:${floor.port}`, models: plain, mode: 'unique', closed: true, open: true, stream: true, note: 'bare node:http + undici pass-through' })
  // what the stack itself costs: the ceiling for a cache hit, and the least a Hono gateway pays (bench/reference-servers.ts)
  // (closed loop only, but for hono-proxy: its added latency at a fixed rate is the framework's)
  for (const r of [
    { name: 'node-answer', kind: 'node-answer', body: 'node', open: false, note: 'node:http answering a constant completion, no upstream (ceiling for a cache hit)' },
    { name: 'hono-answer', kind: 'hono-answer', body: 'node', open: false, note: 'the same answer from Hono + @hono/node-server (ceiling for a cache hit from Hono)' },
    { name: 'hono-proxy', kind: 'hono-proxy', body: 'node', open: true, note: 'Hono + @hono/node-server, undici, c.json() (floor of a Hono gateway)' },
    { name: 'hono-proxy-req', kind: 'hono-proxy', body: 'hono', open: false, note: 'the same, body read with c.req.json() (builds the WHATWG Request)' }
  ] as const) {
    try {
      const ref = await startReference(r.kind, upstream, r.body)
      children.push(ref)
      workloads.push({ name: r.name, child: ref, origin: `http://127.0.0.1:${ref.port}`, models: plain, mode: 'unique', closed: true, open: r.open, stream: false, note: r.note })
    } catch (err) {
      skipped.push(`${r.name}: ${(err as Error).message.split('\n')[0]}`)
    }
  }

  if (sluiceAvailable()) {
    if (!flags['no-build']) {
      console.log('building Sluice (npm run build; --no-build to skip)')
      await buildSluice()
    }
    try {
      const mem = await startSluice('sluice-memory', { upstream })
      children.push(mem)
      const origin = `http://127.0.0.1:${mem.port}`
      workloads.push({ name: 'sluice-memory', child: mem, origin, models: gateway, mode: 'unique', closed: true, open: true, stream: true, note: 'full pipeline, memory store, cache misses' })
      workloads.push({ name: 'sluice-cache-hit', child: mem, origin, models: gateway, mode: 'same', closed: true, open: true, stream: false, note: 'same process, one repeated prompt: exact-cache hits' })
    } catch (err) {
      skipped.push(`sluice-memory: ${(err as Error).message.split('\n').slice(0, 6).join(' | ')}`)
    }
    // one redis-server; a gateway per store.batch_writes (turn, the default: one write per event-loop turn; tick: one
    // per tick, the default before the twenty-first session)
    const redisGateways = [
      { name: 'sluice-redis', batchWrites: 'turn', note: 'full pipeline, Redis store, cache misses' },
      { name: 'sluice-redis-tick', batchWrites: 'tick', note: 'the same with store.batch_writes: tick' }
    ] as const
    let redis: Child | undefined
    for (const g of redisGateways) {
      try {
        if (!redis) children.push((redis = await startRedis()))
        const red = await startSluice('sluice-redis', { upstream, redisUrl: `redis://127.0.0.1:${redis.port}`, batchWrites: g.batchWrites })
        children.push(red)
        workloads.push({ name: g.name, child: red, origin: `http://127.0.0.1:${red.port}`, models: gateway, mode: 'unique', closed: true, open: true, stream: true, note: g.note })
      } catch (err) {
        skipped.push(`${g.name}: ${(err as Error).message.split('\n').slice(0, 6).join(' | ')}`)
      }
    }
  } else {
    skipped.push('sluice: src/cli.ts does not exist yet')
  }
  if (peerAvailable()) {
    try {
      const peer = await startPeer(upstream)
      children.push(peer)
      workloads.push({ name: 'peer-portkey', child: peer, origin: `http://127.0.0.1:${peer.port}`, models: plain, mode: 'unique', closed: true, open: true, stream: true, note: '@portkey-ai/gateway from npm' })
    } catch (err) {
      skipped.push(`peer-portkey: ${(err as Error).message.split('\n')[0]}`)
    }
  } else {
    skipped.push('peer-portkey: not installed (cd bench/peer && npm ci)')
  }

  const only = flags.only?.split(',').map((s) => s.trim())
  const active = workloads.filter((w) => !only || only.includes(w.name) || w.name === 'direct' || w.name === 'floor')
  for (const s of skipped) console.log(`skipped ${s}`)
  console.log(`targets: ${active.map((w) => w.name).join(', ')}; ${settings.rounds} rounds of ${settings.seconds}s, ${settings.connections} connections, ${settings.rate} rps open loop`)

  const idleRssMb = new Map(active.filter((w) => w.child).map((w) => [w.name, rssBytes(w.child!.pid) / 2 ** 20]))
  const samples = new Map<string, Samples>(active.map((w) => [w.name, { closed: [], open: [], stream: [] }]))
  let offset = 1_000_000

  // Warm up: let the JIT and the connection pools settle before anything counts.
  for (const w of active.filter((w) => w.closed)) await measureClosed(w, settings.warmupSeconds, (offset += 10_000_000))

  for (let round = 1; round <= settings.rounds && !shuttingDown; round++) {
    for (const w of active.filter((w) => w.closed)) {
      const r = await measureClosed(w, settings.seconds, (offset += 10_000_000))
      samples.get(w.name)!.closed.push(r)
      console.log(`round ${round} closed ${w.name}: ${r.rps.toFixed(0)} rps, ${r.cpuUsPerReq.toFixed(0)} µs CPU/req, RSS ${r.rssPeakMb.toFixed(0)} MB, non2xx ${r.non2xx}, errors ${r.errors}`)
      await pause(300)
    }
    for (const w of active.filter((w) => w.open)) {
      const s = spec(w, false)
      const base = (offset += 10_000_000)
      const r = await openLoop({ ...s, body: (i) => s.body(i + base) }, { rate: settings.rate, seconds: settings.seconds, warmupSeconds: settings.openWarmupSeconds })
      samples.get(w.name)!.open.push(r)
      console.log(`round ${round} open ${w.name}: p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms, failed ${r.failed}${r.firstFailure ? ` (${r.firstFailure})` : ''}`)
      await pause(300)
    }
    for (const w of active.filter((w) => w.stream)) {
      const s = spec(w, true)
      const base = (offset += 10_000_000)
      const r = await streamTtfb({ ...s, body: (i) => s.body(i + base) }, { n: settings.streamN })
      samples.get(w.name)!.stream.push(r)
      console.log(`round ${round} stream ${w.name}: ttfb p50 ${r.ttfbP50Ms.toFixed(2)} ms, total ${r.totalP50Ms.toFixed(1)} ms, reads ${r.readsP50}${r.firstFailure ? ` (${r.firstFailure})` : ''}`)
    }
  }

  await stopAll()
  const report = renderReport(active, samples, skipped, idleRssMb)
  await writeResults(report, { settings, skipped, samples: Object.fromEntries(samples) })
  console.log(report)
}

/** Median over rounds of f(target sample r, reference sample r): interleaving makes per-round comparisons fair. */
function pairedMedian<T>(xs: T[], refs: T[], f: (x: T, ref: T) => number): number {
  const n = Math.min(xs.length, refs.length)
  return median(Array.from({ length: n }, (_, r) => f(xs[r]!, refs[r]!)))
}

const fmt = (x: number, digits = 0) => (Number.isFinite(x) ? x.toFixed(digits) : '–')

function renderReport(active: Workload[], samples: Map<string, Samples>, skipped: string[], idleRssMb: Map<string, number>): string {
  const floor = samples.get('floor')!
  const direct = samples.get('direct')!
  const lines: string[] = []
  lines.push(machineLine())
  lines.push(`Settings: ${settings.rounds} interleaved rounds; closed loop ${settings.seconds}s at ${settings.connections} connections; open loop ${settings.seconds}s at ${settings.rate} rps after ${settings.openWarmupSeconds}s at that rate on the same connections, not counted; ${settings.streamN} sequential streams of 8 tokens, one every 2 ms, per round. The load generator (${generator === 'wrk' ? 'wrk for the closed loop' : 'autocannon'}, undici for the open loop and streams) shares the machine with every target. Sluice runs built (node dist/src/cli.js); the fake and the floor run under tsx (node --import tsx), which adds about 30 MB of RSS (its loader thread) to the floor's numbers.`)
  lines.push('')
  lines.push('### Throughput and CPU (closed loop)')
  lines.push('')
  lines.push('| target | what | req/s | × floor | CPU µs/req | × floor | RSS idle → peak MB | p50 ms | p99 ms | non-2xx + errors |')
  lines.push('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const w of active.filter((w) => w.closed)) {
    const c = samples.get(w.name)!.closed
    if (c.length === 0) continue
    lines.push(
      `| ${w.name} | ${w.note} | ${fmt(median(c.map((x) => x.rps)))} | ${fmt(pairedMedian(c, floor.closed, (x, f) => x.rps / f.rps), 2)} | ` +
        `${fmt(median(c.map((x) => x.cpuUsPerReq)))} | ${fmt(pairedMedian(c, floor.closed, (x, f) => x.cpuUsPerReq / f.cpuUsPerReq), 2)} | ` +
        `${fmt(idleRssMb.get(w.name) ?? NaN)} → ${fmt(Math.max(...c.map((x) => x.rssPeakMb)))} | ${fmt(median(c.map((x) => x.p50Ms)), 1)} | ${fmt(median(c.map((x) => x.p99Ms)), 1)} | ` +
        `${c.reduce((a, x) => a + x.non2xx + x.errors, 0)} |`
    )
  }
  lines.push(...stackComparison(samples))
  lines.push('')
  lines.push(`### Latency at a fixed ${settings.rate} rps (open loop), added over calling the fake directly`)
  lines.push('')
  lines.push('| target | p50 ms | p99 ms | added p50 ms | added p99 ms | failed |')
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: |')
  for (const w of active.filter((w) => w.open)) {
    const o = samples.get(w.name)!.open
    if (o.length === 0) continue
    lines.push(
      `| ${w.name} | ${fmt(median(o.map((x) => x.p50Ms)), 2)} | ${fmt(median(o.map((x) => x.p99Ms)), 2)} | ` +
        `${w.name === 'direct' ? '–' : fmt(pairedMedian(o, direct.open, (x, d) => x.p50Ms - d.p50Ms), 2)} | ` +
        `${w.name === 'direct' ? '–' : fmt(pairedMedian(o, direct.open, (x, d) => x.p99Ms - d.p99Ms), 2)} | ${o.reduce((a, x) => a + x.failed, 0)} |`
    )
  }
  lines.push('')
  lines.push('### Streaming (time to first byte; the fake sends a chunk every 2 ms)')
  lines.push('')
  lines.push('| target | TTFB p50 ms | TTFB p99 ms | vs floor p50 ms | last byte p50 ms | body reads p50 | failed |')
  lines.push('| --- | ---: | ---: | ---: | ---: | ---: | ---: |')
  for (const w of active.filter((w) => w.stream)) {
    const s = samples.get(w.name)!.stream
    if (s.length === 0) continue
    lines.push(
      `| ${w.name} | ${fmt(median(s.map((x) => x.ttfbP50Ms)), 2)} | ${fmt(median(s.map((x) => x.ttfbP99Ms)), 2)} | ` +
        `${w.name === 'floor' ? '–' : fmt(pairedMedian(s, floor.stream, (x, f) => x.ttfbP50Ms - f.ttfbP50Ms), 2)} | ` +
        `${fmt(median(s.map((x) => x.totalP50Ms)), 1)} | ${fmt(median(s.map((x) => x.readsP50)))} | ${s.reduce((a, x) => a + x.n - x.ok, 0)} |`
    )
  }
  lines.push('')
  lines.push(...targetChecks(samples))
  if (skipped.length) {
    lines.push('')
    lines.push('Not measured in this run:')
    for (const s of skipped) lines.push(`- ${s}`)
  }
  return lines.join('\n')
}

/**
 * Sluice against the reference servers (same rounds, paired): how much of a ratio to the floor the stack itself
 * takes before any feature, and how far a cache hit is from a bare Node answer.
 */
function stackComparison(samples: Map<string, Samples>): string[] {
  const pairs = [
    ['hono-proxy', 'floor', 'a Hono gateway doing nothing but forward, against the floor'],
    ['hono-proxy-req', 'hono-proxy', 'the same reading its body with c.req.json()'],
    ['sluice-memory', 'hono-proxy', 'the full pipeline (misses, memory store) against the Hono floor'],
    ['node-answer', 'floor', 'a bare Node answer, against the floor'],
    ['hono-answer', 'node-answer', 'the same answer from Hono, against bare Node'],
    ['sluice-cache-hit', 'node-answer', 'an exact-cache hit against a bare Node answer'],
    ['sluice-cache-hit', 'hono-answer', 'an exact-cache hit against the same answer from Hono']
  ] as const
  const rows = pairs.filter(([a, b]) => (samples.get(a)?.closed.length ?? 0) > 0 && (samples.get(b)?.closed.length ?? 0) > 0)
  if (rows.length === 0) return []
  const out = ['', '#### Against the stack\'s own floors (closed loop, paired by round)', '', '| target | reference | what | req/s × ref | CPU µs/req × ref |', '| --- | --- | --- | ---: | ---: |']
  for (const [a, b, what] of rows) {
    const xs = samples.get(a)!.closed
    const refs = samples.get(b)!.closed
    out.push(`| ${a} | ${b} | ${what} | ${fmt(pairedMedian(xs, refs, (x, r) => x.rps / r.rps), 2)} | ${fmt(pairedMedian(xs, refs, (x, r) => x.cpuUsPerReq / r.cpuUsPerReq), 2)} |`)
  }
  return out
}

/** The targets of issue 7, checked against this run. */
function targetChecks(samples: Map<string, Samples>): string[] {
  const floor = samples.get('floor')!
  const out = ['### Targets (issue 7)', '', '| target | goal | measured | met |', '| --- | --- | ---: | :---: |']
  const row = (name: string, goal: string, value: number, ok: boolean, digits = 2) =>
    out.push(`| ${name} | ${goal} | ${fmt(value, digits)} | ${Number.isFinite(value) ? (ok ? 'yes' : '**no**') : '–'} |`)
  const rpsRatio = (n: string) => pairedMedian(samples.get(n)?.closed ?? [], floor.closed, (x, f) => x.rps / f.rps)
  const cpuRatio = (n: string) => pairedMedian(samples.get(n)?.closed ?? [], floor.closed, (x, f) => x.cpuUsPerReq / f.cpuUsPerReq)
  const ttfbDelta = (n: string) => pairedMedian(samples.get(n)?.stream ?? [], floor.stream, (x, f) => x.ttfbP50Ms - f.ttfbP50Ms)
  const rssPeak = (n: string) => Math.max(...(samples.get(n)?.closed ?? []).map((x) => x.rssPeakMb))
  if (samples.has('sluice-memory')) {
    const r = rpsRatio('sluice-memory')
    row('full pipeline, memory store', 'throughput ≥ 0.8× floor', r, r >= 0.8)
    const c = cpuRatio('sluice-memory')
    row('full pipeline, memory store', 'CPU per request ≤ 1.4× floor', c, c <= 1.4)
  }
  for (const [n, what] of [['sluice-redis', 'full pipeline, Redis store'], ['sluice-redis-tick', 'full pipeline, Redis store, batch_writes: tick']] as const) {
    if (!samples.has(n)) continue
    const r = rpsRatio(n)
    row(what, 'throughput ≥ 0.6× floor', r, r >= 0.6)
  }
  if (samples.has('sluice-cache-hit')) {
    const r = rpsRatio('sluice-cache-hit')
    row('exact-cache hit', 'throughput ≥ 2× floor', r, r >= 2)
  }
  for (const n of ['sluice-memory', 'sluice-redis']) {
    if (!samples.has(n)) continue
    const d = ttfbDelta(n)
    row(`streaming (${n})`, 'TTFB ≤ floor + 0.3 ms', d, d <= 0.3)
    const reads = median((samples.get(n)?.stream ?? []).map((x) => x.readsP50))
    row(`streaming (${n})`, 'chunks forwarded as they arrive (body reads > 1)', reads, reads > 1, 0)
  }
  for (const n of ['sluice-memory', 'sluice-redis']) {
    if (!samples.has(n)) continue
    const m = rssPeak(n)
    row(`RSS under load (${n})`, '≤ 120 MB', m, m <= 120, 0)
  }
  if (out.length === 4) out.push('| (no Sluice target ran) | | | |')
  return out
}

async function writeResults(report: string, raw: unknown): Promise<void> {
  const file = flags.out!
  await writeSection(file, 'bench', '## Gateway overhead (npm run bench)', report)
  await writeFile(file.replace(/\.md$/, '') + '.json', JSON.stringify(raw, null, 1))
  console.log(`wrote ${file}`)
}

try {
  await main()
} catch (err) {
  await stopAll()
  console.error(err)
  process.exit(1)
}
