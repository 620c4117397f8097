/**
 * Load generators: closed-loop throughput (autocannon, or wrk: bench/lib/wrk.ts), open-loop fixed-rate latency and streaming time
 * to first byte (undici, measured from the intended send time so a slow target cannot hide its queueing).
 */
import autocannon from 'autocannon'
import { Pool } from 'undici'
import { quantile } from './stats.js'
import { closedLoopWrk } from './wrk.js'

export interface RequestSpec {
  /** Origin, e.g. http://127.0.0.1:8080 */
  origin: string
  path: string
  headers: Record<string, string>
  /** Body for the i-th request (unique bodies defeat an exact cache; a constant one hits it). */
  body: (i: number) => string
  /** Headers of the i-th request besides `headers` (e.g. a session id per request). */
  headersFor?: (i: number) => Record<string, string>
}

export interface ClosedLoopResult {
  requests: number
  ok: number
  non2xx: number
  errors: number
  seconds: number
  rps: number
  p50Ms: number
  p99Ms: number
}

/** Which program makes closed-loop load: autocannon (in this process) or wrk (bench/lib/wrk.ts, far less CPU a request). */
export type LoadGenerator = 'autocannon' | 'wrk'

/**
 * Parses a `--load` flag.
 *
 * @example
 * loadGenerator(flags.load) // 'wrk'
 */
export function loadGenerator(value: string | undefined): LoadGenerator {
  if (value === 'autocannon' || value === 'wrk') return value
  throw new Error(`--load: expected autocannon or wrk, got ${value}`)
}

/**
 * Closed loop: `connections` clients each send the next request when the last one answers.
 *
 * @example
 * const r = await closedLoop(spec, { connections: 32, seconds: 5 })
 * const w = await closedLoop(spec, { connections: 32, seconds: 5, generator: 'wrk' })
 */
export async function closedLoop(spec: RequestSpec, opts: { connections: number; seconds: number; generator?: LoadGenerator; maxRps?: number }): Promise<ClosedLoopResult> {
  if (opts.generator === 'wrk') return closedLoopWrk(spec, opts)
  let i = 0
  const result = await autocannon({
    url: spec.origin,
    connections: opts.connections,
    duration: opts.seconds,
    pipelining: 1,
    timeout: 10,
    requests: [
      {
        method: 'POST',
        path: spec.path,
        headers: spec.headers,
        setupRequest: (req) => {
          const n = i++
          return spec.headersFor ? { ...req, headers: { ...spec.headers, ...spec.headersFor(n) }, body: spec.body(n) } : { ...req, body: spec.body(n) }
        }
      }
    ]
  })
  const ok = result['2xx']
  return {
    requests: result.requests.total,
    ok,
    non2xx: result.non2xx,
    errors: result.errors,
    seconds: result.duration,
    rps: ok / result.duration,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99
  }
}

export interface OpenLoopResult {
  /** Requests sent after the warm-up (the ones timed). */
  sent: number
  /** Requests sent during the warm-up, served but not timed. */
  warmupSent: number
  ok: number
  failed: number
  /** Latencies from the intended send time, ms. */
  p50Ms: number
  p90Ms: number
  p99Ms: number
  maxMs: number
  achievedRps: number
  firstFailure?: string
}

/**
 * Open loop: send at a fixed rate whatever the target does; latency counts from when each request was due.
 *
 * The first `warmupSeconds` (default 1) run at the same rate on the same connection pool and are not counted: a
 * fresh pool opens a connection for every request that finds none free, so a window that starts cold opens
 * a few hundred connections in its first milliseconds, and the backlog that storm leaves (the floor: up to
 * 0.6 s for about a second; a slower target for longer) would be read as the target's steady-state tail.
 *
 * @example
 * const r = await openLoop(spec, { rate: 1000, seconds: 5 })
 */
export async function openLoop(spec: RequestSpec, opts: { rate: number; seconds: number; connections?: number; warmupSeconds?: number }): Promise<OpenLoopResult> {
  const pool = new Pool(spec.origin, { connections: opts.connections ?? 256, pipelining: 1, keepAliveTimeout: 30_000 })
  const skipped = Math.round(opts.rate * (opts.warmupSeconds ?? 1))
  const total = skipped + Math.max(1, Math.round(opts.rate * opts.seconds))
  const latencies = new Float64Array(total).fill(NaN)
  const interval = 1000 / opts.rate
  let sent = 0
  let settled = 0
  let failed = 0
  let firstFailure: string | undefined
  const t0 = performance.now()

  const fire = (i: number, due: number) => {
    pool
      .request({ path: spec.path, method: 'POST', headers: spec.headersFor ? { ...spec.headers, ...spec.headersFor(i) } : spec.headers, body: spec.body(i), headersTimeout: 10_000, bodyTimeout: 10_000 })
      .then(async (res) => {
        await res.body.dump({ limit: 1 << 22 })
        if (res.statusCode >= 200 && res.statusCode < 300) latencies[i] = performance.now() - due
        else if (i >= skipped) {
          failed++
          firstFailure ??= `HTTP ${res.statusCode}`
        }
      })
      .catch((err: unknown) => {
        if (i < skipped) return
        failed++
        firstFailure ??= String(err)
      })
      .finally(() => settled++)
  }

  await new Promise<void>((resolve) => {
    const deadline = t0 + (total / opts.rate) * 1000 + 15_000
    const tick = () => {
      const now = performance.now()
      const due = Math.min(total, Math.floor((now - t0) / interval) + 1)
      while (sent < due) {
        fire(sent, t0 + sent * interval)
        sent++
      }
      if ((sent >= total && settled >= total) || now > deadline) return resolve()
      setTimeout(tick, sent >= total ? 5 : 1)
    }
    tick()
  })
  const elapsed = (performance.now() - t0) / 1000 - skipped / opts.rate
  await pool.destroy()
  const ok = latencies.subarray(skipped).filter((x) => !Number.isNaN(x))
  return {
    sent: sent - skipped,
    warmupSent: Math.min(sent, skipped),
    ok: ok.length,
    failed: failed + (sent - settled),
    p50Ms: quantile(ok, 0.5),
    p90Ms: quantile(ok, 0.9),
    p99Ms: quantile(ok, 0.99),
    maxMs: quantile(ok, 1),
    achievedRps: ok.length / elapsed,
    firstFailure
  }
}

export interface StreamResult {
  n: number
  ok: number
  /** Time to the first body byte, ms. */
  ttfbP50Ms: number
  ttfbP99Ms: number
  /** Time to the last byte, ms. */
  totalP50Ms: number
  /** Body reads per stream (more than one means chunks were forwarded as they came, not buffered). */
  readsP50: number
  firstFailure?: string
}

/**
 * Sequential streaming requests; measures time to first body byte and how the body arrived.
 *
 * @example
 * const r = await streamTtfb(spec, { n: 100 })
 */
export async function streamTtfb(spec: RequestSpec, opts: { n: number }): Promise<StreamResult> {
  const pool = new Pool(spec.origin, { connections: 4, pipelining: 1 })
  const ttfb: number[] = []
  const total: number[] = []
  const reads: number[] = []
  let firstFailure: string | undefined
  for (let i = 0; i < opts.n; i++) {
    const t0 = performance.now()
    try {
      const res = await pool.request({ path: spec.path, method: 'POST', headers: spec.headers, body: spec.body(i), headersTimeout: 10_000, bodyTimeout: 10_000 })
      let first = NaN
      let count = 0
      let text = ''
      for await (const chunk of res.body) {
        if (count === 0) first = performance.now() - t0
        count++
        text += (chunk as Buffer).toString('utf8')
      }
      if (res.statusCode !== 200 || !text.includes('[DONE]')) {
        firstFailure ??= `HTTP ${res.statusCode}: ${text.slice(0, 200)}`
        continue
      }
      ttfb.push(first)
      total.push(performance.now() - t0)
      reads.push(count)
    } catch (err) {
      firstFailure ??= String(err)
    }
  }
  await pool.destroy()
  return {
    n: opts.n,
    ok: ttfb.length,
    ttfbP50Ms: quantile(ttfb, 0.5),
    ttfbP99Ms: quantile(ttfb, 0.99),
    totalP50Ms: quantile(total, 0.5),
    readsP50: quantile(reads, 0.5),
    firstFailure
  }
}
