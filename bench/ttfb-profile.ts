/**
 * Where one phase of a streamed request's time to first byte goes, per function: Sluice answers sequential streams
 * under `--cpu-prof` with the phase marks preloaded (bench/lib/phase-marks.mjs), and only the profile's samples
 * inside the chosen phase of each request are counted. bench/ttfb-phases.ts says which phase is long; this says
 * what runs in it, on the cold CPU that sequential requests meet.
 *
 *   node --import tsx bench/ttfb-profile.ts                            # the bench policy, arrival → upstream call
 *   node --import tsx bench/ttfb-profile.ts --policy bare --n 1000     # every feature off
 *   node --import tsx bench/ttfb-profile.ts --phase after              # upstream headers → first bytes written
 *   node --import tsx bench/ttfb-profile.ts --dist node_modules/.ab/base --no-build   # another build
 *   node --import tsx bench/ttfb-profile.ts --store redis             # the Redis store (a throwaway redis-server)
 *
 * Policies as in bench/ttfb-phases.ts. The profiler slows the process (sampling every `--interval` µs), so read
 * the shares, not the absolute window length.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { chatBody } from './lib/bodies.js'
import { streamTtfb } from './lib/load.js'
import { PHASE_MARKS_PRELOAD, readPhases } from './lib/phases.js'
import type { Child } from './lib/procs.js'
import { BENCH_HEADERS, ROOT, benchPolicy, buildSluice, startBackends, startSluice } from './lib/targets.js'
import { profileWindows, type CpuProfile } from './lib/window-profile.js'

const { values: flags } = parseArgs({
  options: {
    policy: { type: 'string', default: 'full' },
    phase: { type: 'string', default: 'before' },
    n: { type: 'string', default: '600' },
    interval: { type: 'string', default: '20' },
    top: { type: 'string', default: '30' },
    dist: { type: 'string' },
    store: { type: 'string', default: 'memory' },
    'no-build': { type: 'boolean', default: false }
  }
})

/** The moments the preload wrote per request (µs, the profile's clock). */
interface Moments {
  arrive: number | null
  sent: number | null
  upstream: number | null
  first: number | null
}

const PHASES: Record<string, (m: Moments) => [number | null, number | null]> = {
  before: (m) => [m.arrive, m.sent],
  upstream: (m) => [m.sent, m.upstream],
  after: (m) => [m.upstream, m.first],
  'first-byte': (m) => [m.arrive, m.first]
}

async function main(): Promise<void> {
  const cuts = benchPolicy(flags.policy!, '--policy')
  const phase = PHASES[flags.phase!]
  if (!phase) throw new Error(`--phase: unknown ${flags.phase}; known: ${Object.keys(PHASES).join(', ')}`)
  const store = flags.store!
  if (store !== 'memory' && store !== 'redis') throw new Error(`--store: memory or redis, not ${store}`)
  if (!flags['no-build'] && !flags.dist) await buildSluice()
  const dir = await mkdtemp(join(tmpdir(), 'sluice-ttfb-profile-'))
  const children: Child[] = []
  const n = Number(flags.n)
  let rows: Moments[]
  try {
    const { upstream, redisUrl } = await startBackends(store, children)
    const out = join(dir, 'phases.json')
    const rowsFile = join(dir, 'rows.json')
    const sluice = await startSluice(`sluice-${store}`, {
      upstream,
      redisUrl,
      dist: flags.dist ? resolve(ROOT, flags.dist) : undefined,
      nodeArgs: [...PHASE_MARKS_PRELOAD, '--cpu-prof', '--cpu-prof-dir', dir, '--cpu-prof-interval', flags.interval!],
      env: { PHASE_MARKS_OUT: out, PHASE_MARKS_ROWS: rowsFile },
      cuts
    })
    children.push(sluice)
    const body = chatBody({ model: 'bench-trickle', mode: 'unique', stream: true })
    const base = Math.floor(Math.random() * 1e9)
    const spec = { origin: `http://127.0.0.1:${sluice.port}`, path: '/v1/chat/completions', headers: BENCH_HEADERS }
    // warm-up, then count afresh
    await streamTtfb({ ...spec, body: (i) => body(base + i) }, { n: 100 })
    await readPhases(sluice.pid, out)
    const r = await streamTtfb({ ...spec, body: (i) => body(base + 1_000_000 + i) }, { n })
    if (r.ok < n) throw new Error(`${n - r.ok} of ${n} streams failed: ${r.firstFailure}`)
    await readPhases(sluice.pid, out)
    rows = JSON.parse(await readFile(rowsFile, 'utf8')) as Moments[]
    // SIGTERM: the gateway exits and node writes the profile
    await sluice.stop()
    children.pop()
    const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'))
    if (!file) throw new Error('the gateway wrote no CPU profile')
    const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile
    const windows = rows.map(phase).filter((w): w is [number, number] => w[0] !== null && w[1] !== null)
    const p = profileWindows(profile, windows)
    const top = Number(flags.top)
    const lines = (list: [string, number][]) => list.slice(0, top).map(([k, us]) => `${us.toFixed(1).padStart(8)}  ${k}`).join('\n')
    console.log(`policy ${flags.policy}, ${store} store, phase ${flags.phase}: ${p.windows} requests, mean window ${p.meanWindowUs.toFixed(0)} µs under the profiler, ${p.samples} samples inside (${(p.samples / Math.max(1, p.windows)).toFixed(1)} per window)`)
    console.log(`\nµs per window, self\n${lines(p.self)}`)
    console.log(`\nµs per window, inclusive\n${lines(p.inclusive)}`)
  } finally {
    await Promise.allSettled(children.reverse().map((c) => c.stop()))
    await rm(dir, { recursive: true, force: true })
  }
}

await main()
