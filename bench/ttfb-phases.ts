/**
 * Where streaming time to first byte goes: the floor and Sluice (the bench policy, and the same policy with layers
 * turned off) each answer sequential streamed requests, as `npm run bench` measures TTFB, while a preload
 * (bench/lib/phase-marks.mjs) notes inside each server when the request arrived, when the upstream call went out,
 * when the upstream's headers came back and when the first bytes went to the client. Targets run in interleaved
 * rounds; the report gives per-phase medians and their difference to the floor.
 *
 *   node --import tsx bench/ttfb-phases.ts                          # full and bare, 5 rounds of 200 streams
 *   node --import tsx bench/ttfb-phases.ts --variants full,no-semantic,no-cache,bare --rounds 7
 *   node --import tsx bench/ttfb-phases.ts --variants 'full,full --max-semi-space-size=1'   # a V8 flag's effect
 *   node --import tsx bench/ttfb-phases.ts --variants 'full,full@node_modules/.ab/base'     # against another build
 *   node --import tsx bench/ttfb-phases.ts --no-build --write       # also rewrite its section of bench/RESULTS.md
 *   node --import tsx bench/ttfb-phases.ts --pin                    # servers on the last CPU, client and fake on the first
 *
 * A variant is a policy, optionally `@` another build's output folder (a copy of dist/ inside the repo, so its imports
 * resolve), optionally `:redis` (the Redis store, its own keys), optionally followed by flags for Sluice's node. Policies: `full` (bench/policies/bench.yaml),
 * `no-semantic`, `no-cache` (both cache layers off), `no-guardrails`, `no-budgets`, `bare` (all four off).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { PHASE_MARKS_PRELOAD, readPhases, sequentialStreams, type PhaseReport } from './lib/phases.js'
import { pinApart, type Child } from './lib/procs.js'
import { machineLine, RESULTS_FILE, writeSection } from './lib/results.js'
import { describePaired, median, pairedComparison } from './lib/stats.js'
import { BENCH_HEADERS, ROOT, upstreamModel, benchPolicy, buildSluice, startBackends, startFloor, startSluice } from './lib/targets.js'

const { values: flags } = parseArgs({
  options: {
    variants: { type: 'string', default: 'full,bare' },
    rounds: { type: 'string', default: '5' },
    n: { type: 'string', default: '200' },
    'no-build': { type: 'boolean', default: false },
    // servers on the last CPU, this process (the client) and the fake upstream on the first, as in bench/ab.ts
    pin: { type: 'boolean', default: false },
    write: { type: 'boolean', default: false }
  }
})

const PHASES = ['beforeUpstream', 'upstream', 'afterUpstream', 'firstByte', 'corked'] as const

interface Target {
  name: string
  child: Child
  out: string
  /** Its sequential streams: the floor has no `bench-trickle` alias and is sent the upstream model it names. */
  streams: (n: number) => Promise<number>
  rounds: { ttfbMs: number; phases: PhaseReport }[]
}

async function main(): Promise<void> {
  const variants = flags.variants!.split(',').map((v) => {
    const [spec, ...nodeArgs] = v.trim().split(/\s+/)
    // a `:redis` suffix keeps the variant's state in Redis (its own key prefix), as `:redis` in bench/ab.ts
    const redis = spec!.endsWith(':redis')
    const [policy, dist] = (redis ? spec!.slice(0, -':redis'.length) : spec!).split('@')
    return { name: v.trim(), cuts: benchPolicy(policy!, '--variants'), dist: dist ? resolve(ROOT, dist) : undefined, nodeArgs, redis }
  })
  if (!flags['no-build']) await buildSluice()
  const dir = await mkdtemp(join(tmpdir(), 'sluice-phases-'))
  const children: Child[] = []
  const targets: Target[] = []
  try {
    const { upstream, redisUrl } = await startBackends(variants.some((v) => v.redis) ? 'redis' : 'memory', children)
    const floorOut = join(dir, 'floor.json')
    const floor = await startFloor(upstream, { nodeArgs: PHASE_MARKS_PRELOAD, env: { PHASE_MARKS_OUT: floorOut } })
    children.push(floor)
    const floorStreams = sequentialStreams({ name: 'floor', port: floor.port, headers: { 'content-type': 'application/json' }, model: upstreamModel('bench-trickle') })
    targets.push({ name: 'floor', child: floor, out: floorOut, streams: floorStreams, rounds: [] })
    for (const [i, v] of variants.entries()) {
      const out = join(dir, `sluice-${i}.json`)
      const child = await startSluice(v.redis ? 'sluice-redis' : 'sluice-memory', {
        upstream,
        ...(v.redis ? { redisUrl, redisPrefix: `phases-${i}:` } : {}),
        nodeArgs: [...v.nodeArgs, ...PHASE_MARKS_PRELOAD],
        dist: v.dist,
        env: { PHASE_MARKS_OUT: out },
        cuts: v.cuts
      })
      children.push(child)
      const name = `sluice ${v.name}`
      targets.push({ name, child, out, streams: sequentialStreams({ name, port: child.port, headers: BENCH_HEADERS, model: 'bench-trickle' }), rounds: [] })
    }
    if (flags.pin) pinApart(targets.map((t) => t.child), children)
    // warm-up, then start counting afresh (the readiness probe and the warm-up are not measured)
    for (const t of targets) {
      await t.streams(50)
      await readPhases(t.child.pid, t.out)
    }
    const rounds = Number(flags.rounds)
    for (let r = 0; r < rounds; r++) {
      for (const t of r % 2 ? [...targets].reverse() : targets) {
        const ttfbMs = await t.streams(Number(flags.n))
        t.rounds.push({ ttfbMs, phases: await readPhases(t.child.pid, t.out) })
      }
      console.log(`round ${r}: ${targets.map((t) => `${t.name} ${t.rounds.at(-1)!.ttfbMs.toFixed(2)} ms`).join(' | ')}`)
    }
  } finally {
    await Promise.allSettled(children.reverse().map((c) => c.stop()))
    await rm(dir, { recursive: true, force: true })
  }
  const report = render(targets)
  console.log(report)
  if (flags.write) await writeSection(RESULTS_FILE, 'ttfb-phases', '## Where streaming TTFB goes (bench/ttfb-phases.ts)', report)
}

/** Median over rounds, and the median of the paired per-round differences to the floor. */
function render(targets: Target[]): string {
  const floor = targets[0]!
  const cell = (t: Target, f: (x: Target['rounds'][number]) => number | null, unit: 'ms' | 'µs') => {
    const own = t.rounds.map(f)
    const value = median(own.map((x) => x ?? NaN))
    const text = unit === 'ms' ? `${value.toFixed(2)} ms` : `${Math.round(value)} µs`
    if (t === floor) return text
    const d = median(own.map((x, i) => (x ?? NaN) - (f(floor.rounds[i]!) ?? NaN)))
    return `${text} (${d >= 0 ? '+' : ''}${unit === 'ms' ? d.toFixed(2) : Math.round(d)})`
  }
  const n = floor.rounds.length
  const overlapped = targets.reduce((s, t) => s + t.rounds.reduce((a, r) => a + r.phases.overlapped, 0), 0)
  const lines = [
    machineLine(),
    '',
    `${n} interleaved rounds of ${flags.n} sequential streamed requests (bench-trickle: 8 tokens, 2 ms apart) per target; medians over`,
    'rounds, in brackets the median of the per-round differences to the floor. Client TTFB is what `npm run bench` reports;',
    'the other columns are read inside each server by bench/lib/phase-marks.mjs: arrival → upstream call sent (the floor',
    'streams the body through, so it sends at once; Sluice reads and checks the whole body first), sent → upstream headers',
    'back (the fake and loopback, the same for every target), upstream headers → first bytes written to the response,',
    'arrival → first bytes written, and how long Node\'s cork then held those bytes before the socket wrote them.',
    'Client TTFB minus arrival → first byte is what happens outside the server\'s handler: the cork, the kernel, the',
    `client, and work the server still does for the previous request. ${overlapped ? `${overlapped} overlapping requests were left out.` : 'No request overlapped another.'}`,
    '',
    '| target | client TTFB p50 | arrival → upstream sent | upstream | upstream headers → first byte | arrival → first byte | first byte corked |',
    '|---|---|---|---|---|---|---|'
  ]
  for (const t of targets) {
    const cols = PHASES.map((p) => cell(t, (r) => r.phases[p], 'µs'))
    lines.push(`| ${t.name} | ${cell(t, (r) => r.ttfbMs, 'ms')} | ${cols.join(' | ')} |`)
  }
  // two builds or policies side by side: each against the first Sluice variant, paired by round, as bench/ab.ts does
  const [first, ...others] = targets.slice(1)
  if (first && others.length > 0) {
    lines.push('', `Against ${first.name}, paired by round:`)
    for (const t of others) {
      const paired = (f: (x: Target['rounds'][number]) => number | null, unit: string, digits: number) =>
        describePaired(pairedComparison(first.rounds.map((r) => f(r) ?? NaN), t.rounds.map((r) => f(r) ?? NaN)), first.name, unit, digits)
      lines.push(`- ${t.name}: client TTFB ${paired((r) => r.ttfbMs, 'ms', 2)}; arrival → upstream sent ${paired((r) => r.phases.beforeUpstream, 'µs', 0)}`)
    }
  }
  return lines.join('\n')
}

await main()
