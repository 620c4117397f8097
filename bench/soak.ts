/**
 * Soak: Sluice at a fixed rate for a bounded time with mixed traffic (cache misses, exact-cache hits,
 * streams, budget rejections), sampling RSS, heap and event-loop lag from its /metrics. Fails (exit 1)
 * on any unexpected status or transport error, or when memory grows over the run.
 *
 *   node --import tsx bench/soak.ts                      # 10 minutes at 100 rps, memory store
 *   node --import tsx bench/soak.ts --duration 30s       # CI size
 *   node --import tsx bench/soak.ts --store redis --rate 200 --max-growth-mb 15
 *
 * Traffic goes to 127.0.0.1 only: a fake upstream, a throwaway redis-server and Sluice, each its own process.
 */
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { chatBody } from './lib/bodies.js'
import { rssBytes, startRedis, type Child } from './lib/procs.js'
import { median, quantile, slope } from './lib/stats.js'
import { BENCH_KEY, buildSluice, sluiceAvailable, startFake, startSluice, TIGHT_KEY } from './lib/targets.js'

const { values: flags } = parseArgs({
  options: {
    duration: { type: 'string', default: '10m' },
    rate: { type: 'string', default: '100' },
    store: { type: 'string', default: 'memory' },
    sample: { type: 'string' },
    'max-growth-mb': { type: 'string', default: '20' },
    'max-lag-ms': { type: 'string', default: '250' },
    'no-build': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false }
  }
})
if (flags.help) {
  console.log('usage: node --import tsx bench/soak.ts [--duration 10m|30s] [--rate RPS] [--store memory|redis] [--sample 10s] [--max-growth-mb 20] [--max-lag-ms 250] [--no-build]')
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
const sampleS = flags.sample ? seconds(flags.sample, 'sample') : Math.max(1, Math.min(10, durationS / 30))
const maxGrowthMb = Number(flags['max-growth-mb'])
const maxLagMs = Number(flags['max-lag-ms'])
if (flags.store !== 'memory' && flags.store !== 'redis') throw new Error(`--store: memory or redis, got "${flags.store}"`)
if (!(rate > 0 && durationS > 0)) throw new Error('--rate and --duration must be positive')

/** One request's kind, chosen by its index: 60% misses, 20% hits, 10% streams, 10% over-budget key. */
type Kind = 'miss' | 'hit' | 'stream' | 'budget'
const kindOf = (i: number): Kind => {
  const k = i % 20
  return k < 12 ? 'miss' : k < 16 ? 'hit' : k < 18 ? 'stream' : 'budget'
}

interface Sample {
  t: number
  rssMb: number
  heapMb: number
  lagMs: number
  lagP99Ms: number
}

/** Read one gauge's value from the Prometheus text format (first series without or with labels). */
function gauge(text: string, name: string): number {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text)
  return m ? Number(m[1]) : NaN
}

async function main(): Promise<number> {
  if (!sluiceAvailable()) {
    console.error('soak: src/cli.ts does not exist yet; nothing to soak')
    return 1
  }
  const children: Child[] = []
  const stopAll = () => Promise.allSettled(children.reverse().map((c) => c.stop()))
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)))
  try {
    if (!flags['no-build']) await buildSluice()
    const fake = await startFake()
    children.push(fake)
    const upstream = `http://127.0.0.1:${fake.port}`
    let redisUrl: string | undefined
    if (flags.store === 'redis') {
      const redis = await startRedis()
      children.push(redis)
      redisUrl = `redis://127.0.0.1:${redis.port}`
    }
    const sluice = await startSluice(flags.store === 'redis' ? 'sluice-redis' : 'sluice-memory', { upstream, redisUrl })
    children.push(sluice)
    return await soak(sluice)
  } finally {
    await stopAll()
  }
}

async function soak(sluice: Child): Promise<number> {
  const origin = `http://127.0.0.1:${sluice.port}`
  const pool = new Pool(origin, { connections: 128, pipelining: 1 })
  const bodies = {
    miss: chatBody({ model: 'gpt-4o-mini', mode: 'unique' }),
    stream: chatBody({ model: 'bench-trickle', mode: 'unique', stream: true })
  }
  const hitBodies = Array.from({ length: 8 }, (_, k) => chatBody({ model: 'gpt-4o-mini', mode: 'unique' })(900_000_000 + k))
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
        lagP99Ms: gauge(text, 'nodejs_eventloop_lag_p99_seconds') * 1000
      })
    } catch (err) {
      count('unexpected')
      if (unexpected.length < 20) unexpected.push(`/metrics: ${String(err)}`)
    }
  }

  const total = Math.round(rate * durationS)
  const interval = 1000 / rate
  const t0 = performance.now()
  let sent = 0
  let nextSample = 0
  let nextLog = 0
  console.log(`soak: ${durationS}s at ${rate} rps (${total} requests), ${flags.store} store, sampling every ${sampleS}s`)
  await new Promise<void>((resolve) => {
    const deadline = t0 + durationS * 1000 + 30_000
    const tick = () => {
      const now = performance.now()
      const elapsed = (now - t0) / 1000
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
        console.log(`  ${elapsed.toFixed(0)}s: sent ${sent}, done ${settled}, unexpected ${counts.unexpected ?? 0}` + (last ? `, RSS ${last.rssMb.toFixed(0)} MB, heap ${last.heapMb.toFixed(0)} MB, lag ${last.lagMs.toFixed(1)} ms` : ''))
      }
      if ((sent >= total && settled >= total) || now > deadline) return resolve()
      setTimeout(tick, sent >= total ? 10 : 1)
    }
    tick()
  })
  const hung = sent - settled
  if (hung > 0) {
    counts.unexpected = (counts.unexpected ?? 0) + hung
    unexpected.push(`${hung} requests had no answer 30 s after the soak ended`)
  }
  await takeSample((performance.now() - t0) / 1000)
  await pool.destroy()
  return report(samples, counts, unexpected, latencies)
}

function report(samples: Sample[], counts: Record<string, number>, unexpected: string[], latencies: number[]): number {
  // The first fifth is warm-up (JIT, pools, caches filling); growth is judged on the rest.
  const steady = samples.slice(Math.floor(samples.length / 5))
  const quarter = Math.max(1, Math.floor(steady.length / 4))
  const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / Math.max(1, xs.length)
  const rssGrowth = mean(steady.slice(-quarter).map((s) => s.rssMb)) - mean(steady.slice(0, quarter).map((s) => s.rssMb))
  const heapGrowth = mean(steady.slice(-quarter).map((s) => s.heapMb)) - mean(steady.slice(0, quarter).map((s) => s.heapMb))
  const rssSlope = slope(steady.map((s) => s.t / 60), steady.map((s) => s.rssMb))
  const heapSlope = slope(steady.map((s) => s.t / 60), steady.map((s) => s.heapMb))
  const maxLag = Math.max(...samples.map((s) => s.lagMs).filter(Number.isFinite))
  const fmt = (x: number, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '–')

  console.log('\nresponses:')
  for (const [k, v] of Object.entries(counts).sort()) console.log(`  ${k}: ${v}`)
  console.log(`latency from due time: p50 ${fmt(median(latencies), 2)} ms, p99 ${fmt(quantile(latencies, 0.99), 2)} ms, max ${fmt(quantile(latencies, 1), 1)} ms`)
  console.log(`samples: ${samples.length} (${steady.length} after warm-up)`)
  console.log(`RSS: start ${fmt(steady[0]?.rssMb ?? NaN, 0)} MB, end ${fmt(steady.at(-1)?.rssMb ?? NaN, 0)} MB, max ${fmt(Math.max(...samples.map((s) => s.rssMb)), 0)} MB; growth last vs first quarter ${fmt(rssGrowth)} MB, trend ${fmt(rssSlope, 2)} MB/min`)
  console.log(`heap used: growth ${fmt(heapGrowth)} MB, trend ${fmt(heapSlope, 2)} MB/min`)
  console.log(`event-loop lag: median ${fmt(median(samples.map((s) => s.lagMs)), 2)} ms, max ${fmt(maxLag, 2)} ms, p99 (prom-client) max ${fmt(Math.max(...samples.map((s) => s.lagP99Ms).filter(Number.isFinite)), 2)} ms`)

  const failures: string[] = []
  if ((counts.unexpected ?? 0) > 0) failures.push(`${counts.unexpected} unexpected responses or errors:\n    ${unexpected.join('\n    ')}`)
  if (steady.length < 4) failures.push(`only ${steady.length} samples after warm-up; run longer or sample more often (--sample)`)
  if (rssGrowth > maxGrowthMb) failures.push(`RSS grew ${fmt(rssGrowth)} MB over the steady part (limit ${maxGrowthMb} MB)`)
  if (heapGrowth > maxGrowthMb) failures.push(`heap grew ${fmt(heapGrowth)} MB over the steady part (limit ${maxGrowthMb} MB)`)
  const rejected = (counts['budget 402'] ?? 0) + (counts['budget 429'] ?? 0)
  if (rejected === 0) failures.push('no budget rejection at all: the over-budget key was always served (is budget enforcement wired in?)')
  if (maxLag > maxLagMs) failures.push(`event-loop lag reached ${fmt(maxLag)} ms (limit ${maxLagMs} ms)`)
  if (failures.length) {
    console.log(`\nSOAK FAILED:\n  - ${failures.join('\n  - ')}`)
    return 1
  }
  console.log('\nsoak passed: no unexpected responses, no memory growth, event loop responsive')
  return 0
}

process.exitCode = await main().catch((err: unknown) => {
  console.error(err)
  return 1
})
