/**
 * Where a streamed request's way to its upstream call goes, stage by stage: a copy of the build with a mark at each
 * stage (bench/lib/segments.ts; src/ is untouched) answers sequential streams with the phase marks preloaded, and the
 * report gives each stage's median µs after the request's arrival and since the stage before. bench/ttfb-phases.ts
 * says how long the way is against the floor; this says where along it the time goes, on the cold CPU that
 * sequential requests meet (each stage costs several times what it does under load).
 *
 *   node --import tsx bench/ttfb-segments.ts                          # the bench policy, 4 rounds of 200 streams
 *   node --import tsx bench/ttfb-segments.ts --policy bare --rounds 6 # every layer off
 *   node --import tsx bench/ttfb-segments.ts --dist node_modules/.ab/base --no-build   # another build
 *   node --import tsx bench/ttfb-segments.ts --no-build --write      # also keep the table in bench/RESULTS.md
 *
 * Policies as in bench/ttfb-phases.ts. The gateway runs pinned to the last CPU, this process and the fake upstream
 * on the first (`--no-pin` to leave them to the scheduler).
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { PHASE_MARKS_PRELOAD, readPhases, sequentialStreams, type PhaseReport } from './lib/phases.js'
import { pinApart, type Child } from './lib/procs.js'
import { machineLine, RESULTS_FILE, writeSection } from './lib/results.js'
import { CHAT_SEGMENTS, markBuild } from './lib/segments.js'
import { median } from './lib/stats.js'
import { BENCH_HEADERS, ROOT, benchPolicy, buildSluice, startBackends, startSluice } from './lib/targets.js'

const { values: flags } = parseArgs({
  options: {
    policy: { type: 'string', default: 'full' },
    rounds: { type: 'string', default: '4' },
    n: { type: 'string', default: '200' },
    dist: { type: 'string' },
    'no-build': { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    write: { type: 'boolean', default: false }
  }
})

async function main(): Promise<void> {
  const cuts = benchPolicy(flags.policy!, '--policy')
  if (!flags.dist && !flags['no-build']) await buildSluice()
  const marked = join(ROOT, 'node_modules', '.ab', 'segments')
  await markBuild(resolve(ROOT, flags.dist ?? 'dist'), marked, CHAT_SEGMENTS)
  const dir = await mkdtemp(join(tmpdir(), 'sluice-segments-'))
  const out = join(dir, 'phases.json')
  const children: Child[] = []
  const reports: PhaseReport[] = []
  try {
    const { upstream } = await startBackends('memory', children)
    const sluice = await startSluice('sluice-memory', { upstream, dist: marked, cuts, nodeArgs: PHASE_MARKS_PRELOAD, env: { PHASE_MARKS_OUT: out } })
    children.push(sluice)
    if (!flags['no-pin']) pinApart([sluice], children)
    const round = sequentialStreams({ name: 'sluice', port: sluice.port, headers: BENCH_HEADERS, model: 'bench-trickle' })
    await round(50)
    await readPhases(sluice.pid, out)
    for (let r = 0; r < Number(flags.rounds); r++) {
      await round(Number(flags.n))
      reports.push(await readPhases(sluice.pid, out))
      console.log(`round ${r}: arrival → upstream sent ${reports.at(-1)!.beforeUpstream} µs`)
    }
  } finally {
    await Promise.allSettled(children.reverse().map((c) => c.stop()))
    await rm(dir, { recursive: true, force: true })
  }
  const report = render(reports)
  console.log(report)
  if (flags.write) await writeSection(RESULTS_FILE, `ttfb-segments-${flags.policy}`, `## Where a streamed request's way to its upstream call goes (bench/ttfb-segments.ts, policy ${flags.policy})`, report)
}

/** The stages in order of their median moment, with the time since the stage before. */
function render(reports: PhaseReport[]): string {
  const at = (f: (r: PhaseReport) => number | null | undefined) => median(reports.map((r) => f(r) ?? NaN).filter(Number.isFinite))
  const stages: [string, number][] = [['arrival', 0]]
  const names = new Set(reports.flatMap((r) => Object.keys(r.marks ?? {})))
  for (const name of names) stages.push([name, at((r) => r.marks?.[name])])
  stages.push(['upstream call sent (undici)', at((r) => r.beforeUpstream)], ['first bytes written', at((r) => r.firstByte)])
  stages.sort((a, b) => a[1] - b[1])
  const lines = [
    machineLine(),
    '',
    `${reports.length} rounds of ${flags.n} sequential streamed requests, policy ${flags.policy}; medians over rounds of each round's median,`,
    'µs after the request arrived (node:http) and since the stage before. Stages no request passed are left out.',
    '',
    '| stage | µs after arrival | µs since the stage before |',
    '|---|---:|---:|'
  ]
  let previous = 0
  for (const [name, us] of stages) {
    if (!Number.isFinite(us)) continue
    lines.push(`| ${name} | ${Math.round(us)} | ${name === 'arrival' ? '' : Math.round(us - previous)} |`)
    previous = us
  }
  return lines.join('\n')
}

await main()
