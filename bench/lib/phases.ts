/**
 * Reading what bench/lib/phase-marks.mjs noted inside a server: where its time to first byte went.
 */
import { readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { chatBody } from './bodies.js'
import { streamTtfb } from './load.js'
import { ROOT } from './targets.js'

/** Node flags that preload the phase marks into a server (its env must name PHASE_MARKS_OUT). */
export const PHASE_MARKS_PRELOAD = ['--import', join(ROOT, 'bench', 'lib', 'phase-marks.mjs')]

/** One report: µs medians over the requests since the last report (null where no request had that phase). */
export interface PhaseReport {
  requests: number
  /** Requests that overlapped another, left out of the medians. */
  overlapped: number
  /** Arrival → the upstream call's headers sent. */
  beforeUpstream: number | null
  /** Upstream call sent → its response headers back. */
  upstream: number | null
  /** Upstream response headers → first bytes written to the response. */
  afterUpstream: number | null
  /** Arrival → first bytes written to the response. */
  firstByte: number | null
  /** The first write call → the socket's write: how long Node's cork held the first bytes back. */
  corked: number | null
  /** Arrival → each named moment a build with marks passed (bench/lib/segments.ts), in order; empty without marks. */
  marks: Record<string, number | null>
}

/**
 * Ask a preloaded server (SIGUSR2) for its report of the requests since the last one, and start it counting afresh.
 *
 * @example
 * const floor = await startFloor(upstream, { nodeArgs: PHASE_MARKS_PRELOAD, env: { PHASE_MARKS_OUT: file } })
 * const report = await readPhases(floor.pid, file)
 */
export async function readPhases(pid: number, file: string, timeoutMs = 5000): Promise<PhaseReport> {
  await rm(file, { force: true })
  process.kill(pid, 'SIGUSR2')
  for (let waited = 0; waited < timeoutMs; waited += 20) {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as PhaseReport
    } catch {
      // not written yet (or half written): the preload writes it in one call on the signal
      await new Promise((r) => setTimeout(r, 20))
    }
  }
  throw new Error(`process ${pid} wrote no phase report to ${file} (was it started with bench/lib/phase-marks.mjs?)`)
}

/**
 * Sequential streamed requests to one server, as phase measurements need them (one request at a time, each a new
 * prompt of the `model` stream): each call sends `n` of them after the last call's and throws unless all were
 * answered whole; it resolves to the client's median time to first byte (ms).
 *
 * @example
 * const streams = sequentialStreams({ name: 'floor', port: floor.port, headers, model: upstreamModel('bench-trickle') })
 * await streams(50) // warm-up
 */
export function sequentialStreams(opts: { name: string; port: number; headers: Record<string, string>; model: string }): (n: number) => Promise<number> {
  const body = chatBody({ model: opts.model, mode: 'unique', stream: true })
  let offset = Math.floor(Math.random() * 1e9)
  return async (n) => {
    const base = (offset += 10_000_000)
    const r = await streamTtfb({ origin: `http://127.0.0.1:${opts.port}`, path: '/v1/chat/completions', headers: opts.headers, body: (i) => body(i + base) }, { n })
    if (r.ok < n) throw new Error(`${opts.name}: ${n - r.ok} of ${n} streams failed: ${r.firstFailure}`)
    return r.ttfbP50Ms
  }
}
