/**
 * Interleaved A/B of CPU per request between builds of the gateway, or node flags: every variant serves at once
 * behind one fake upstream, and each round loads them in turn (the order reversed every other round), so the
 * machine's drift falls on all of them alike. Reports each variant's median and, against the first variant, the
 * median of the per-round differences and in how many rounds it was lower. On a shared 2-core machine, rounds
 * differ by ±100 µs on misses: claim an effect only when the paired median and the count agree over 12+ rounds.
 *
 *   npx tsc -p tsconfig.build.json --outDir node_modules/.ab/base            # a build to compare, inside the repo
 *   node --import tsx bench/ab.ts --variants node_modules/.ab/base,dist --rounds 16
 *   node --import tsx bench/ab.ts --variants 'dist,dist --max-semi-space-size=64' --mode same
 *   node --import tsx bench/ab.ts --variants node_modules/.ab/base,dist --no-semantic
 *   node --import tsx bench/ab.ts --variants node_modules/.ab/base,dist --mode same --pin
 *
 * A variant is a build's output folder (dist/ or a copy made as above: its imports must resolve from the repo),
 * optionally followed by flags for that gateway's node, after spaces (as in bench/ttfb-phases.ts). `--no-semantic` (and the other `--no-*`)
 * turn layers off in the bench policy, as in bench/profile.ts: the semantic index grows through a run of misses
 * and its crowded scope adds most of their round-to-round spread, so small effects elsewhere show better without it.
 * A variant may name its own policy instead (`dist@no-semantic`, `dist@bare`, or several joined:
 * `dist@no-semantic+no-guardrails`; bench/lib/variants.ts), and `floor` (the bare pass-through proxy) and the
 * reference servers (`hono-proxy`, `hono-answer`, `node-answer`) are variants too, so one pinned run gives what each
 * layer costs, paired, next to the floor:
 *
 *   node --import tsx bench/ab.ts --pin --rounds 12 --variants 'floor,hono-proxy,dist,dist@no-semantic,dist@no-semantic+no-guardrails,dist@no-semantic+no-budgets,dist@no-cache,dist@bare'
 *
 * `--sessions N` spreads the requests over N `x-sluice-session` ids, so each carries the session's running total (an
 * end callback: a JSON answer waits for it).
 *
 * A Sluice variant may end in `:redis` or `:redis-tick` (`dist@no-semantic:redis`): it then keeps its state in one
 * redis-server started for the run (the default turn batching or tick, its own key prefix), which `--pin` puts beside the fake
 * upstream; so memory and Redis stores compare in the same rounds.
 *
 * `--pin` keeps every gateway on the last CPU and this process (the load generator) and the fake upstream on the
 * first (`taskset`, Linux): the scheduler then cannot put a gateway and the load generator on one core for part of a
 * round. Same-build A/A runs on the 2-core dev VM: misses' per-round differences spread half as wide (IQR 62 → 31 µs).
 */
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { chatBody } from './lib/bodies.js'
import { closedLoop, loadGenerator, openLoop } from './lib/load.js'
import { cpuMicros, pinApart, type Child } from './lib/procs.js'
import { describePaired, median, pairedComparison, pairedRatio, roundOrder } from './lib/stats.js'
import { BENCH_HEADERS, LAYER_CUT_OPTIONS, ROOT, buildSluice, layerCutsOf, startBackends, startFloor, startReference, startSluice, upstreamModel } from './lib/targets.js'
import { parseAbVariant, type AbVariant } from './lib/variants.js'

const { values: flags } = parseArgs({
  options: {
    variants: { type: 'string', default: 'dist' },
    mode: { type: 'string', default: 'unique' },
    stream: { type: 'boolean', default: false },
    // the bench config's model alias (default gpt-4o-mini, bench-trickle with --stream; bench-long: 500-token answers)
    // the request's max_tokens (the fake answers at most this many tokens)
    'max-tokens': { type: 'string', default: '16' },
    // earlier user/assistant turns in every request (the same for all): a long agent conversation
    history: { type: 'string', default: '0' },
    model: { type: 'string' },
    rounds: { type: 'string', default: '12' },
    seconds: { type: 'string', default: '4' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '32' },
    'no-build': { type: 'boolean', default: false },
    pin: { type: 'boolean', default: false },
    // the closed loop's load generator: autocannon (in this process) or wrk (a C process, far less CPU a request)
    load: { type: 'string', default: 'autocannon' },
    // open loop at this many requests a second instead of the closed loop: latency below saturation, paired
    rate: { type: 'string' },
    // unique prompts under this many system prompts: as many semantic-cache scopes (default one)
    systems: { type: 'string', default: '1' },
    // requests carry x-sluice-session, spread over this many session ids (0: none): the session total then applies
    sessions: { type: 'string', default: '0' },
    ...LAYER_CUT_OPTIONS
  }
})

/** Starts one variant behind the fake upstream; the `i`th variant on Redis keeps its keys under `ab-i:`. */
function startVariant(v: AbVariant, i: number, upstream: string, redisUrl: string | undefined): Promise<Child> {
  if (v.kind === 'floor') return startFloor(upstream, { nodeArgs: v.nodeArgs, env: v.env })
  if (v.kind === 'reference') return startReference(v.reference, upstream)
  const build = { upstream, dist: v.dist, nodeArgs: v.nodeArgs, env: v.env, cuts: v.cuts }
  if (v.store === 'memory') return startSluice('sluice-memory', build)
  // one redis-server for all; each variant its own keys, so no budget, ledger or cache entry is shared
  return startSluice('sluice-redis', { ...build, redisUrl, batchWrites: v.store === 'redis-tick' ? 'tick' : 'turn', redisPrefix: `ab-${i}:` })
}

async function main(): Promise<void> {
  const cuts = layerCutsOf(flags)
  const variants = flags.variants!.split(',').map((spec) => parseAbVariant(spec, ROOT, cuts))
  if (!flags['no-build'] && variants.some((v) => v.kind === 'sluice' && v.dist === resolve(ROOT, 'dist'))) await buildSluice()
  const children: Child[] = []
  try {
    const onRedis = variants.some((v) => v.kind === 'sluice' && v.store !== 'memory')
    const { upstream, redisUrl } = await startBackends(onRedis ? 'redis' : 'memory', children)
    const gateways: Child[] = []
    for (const [i, v] of variants.entries()) {
      const g = await startVariant(v, i, upstream, redisUrl)
      children.push(g)
      gateways.push(g)
    }
    if (flags.pin) {
      // the gateways on the last CPU; this process (the load generator) and the fake upstream on the first
      pinApart(gateways, children)
    }
    const alias = flags.model ?? (flags.stream ? 'bench-trickle' : 'gpt-4o-mini')
    const bodyFor = (model: string) =>
      chatBody({ maxTokens: Number(flags['max-tokens']), history: Number(flags.history), model, mode: flags.mode === 'same' ? 'same' : 'unique', stream: flags.stream, systems: Number(flags.systems) })
    // the floor and the reference servers have no model aliases: they are sent the model the alias asks the fake for
    const bodies = variants.map((v) => (v.kind === 'sluice' ? bodyFor(alias) : bodyFor(upstreamModel(alias))))
    let offset = Math.floor(Math.random() * 1e9)
    const rate = flags.rate === undefined ? undefined : Number(flags.rate)
    if (rate !== undefined && !(rate > 0)) throw new Error(`--rate: expected a positive number of requests a second, got ${flags.rate}`)
    /** One load of a gateway: requests served, throughput, and with `--rate` the latency percentiles (ms). */
    const load = async (g: Child, body: (i: number) => string, seconds: number, name: string): Promise<{ requests: number; rps: number; p50Ms?: number; p99Ms?: number }> => {
      const base = (offset += 10_000_000)
      const sessions = Number(flags.sessions)
      const spec = {
        origin: `http://127.0.0.1:${g.port}`,
        path: '/v1/chat/completions',
        headers: BENCH_HEADERS,
        body: (i: number) => body(i + base),
        headersFor: sessions > 0 ? (i: number) => ({ 'x-sluice-session': `ab-${(i + base) % sessions}` }) : undefined
      }
      if (rate === undefined) {
        const res = await closedLoop(spec, { connections: Number(flags.connections), seconds, generator: loadGenerator(flags.load) })
        if (res.non2xx > 0 || res.errors > 0) throw new Error(`${name}: ${res.non2xx} non-2xx answers, ${res.errors} errors`)
        return res
      }
      // a second at the same rate first, served but not timed (as in bench/run.ts); its CPU is in the round's too
      const res = await openLoop(spec, { rate, seconds, warmupSeconds: 1 })
      if (res.failed > 0) throw new Error(`${name}: ${res.failed} failed requests (${res.firstFailure})`)
      return { requests: res.sent + res.warmupSent, rps: res.achievedRps, p50Ms: res.p50Ms, p99Ms: res.p99Ms }
    }
    for (const [i, g] of gateways.entries()) await load(g, bodies[i]!, Number(flags.warmup), variants[i]!.name)
    const cpu: number[][] = variants.map(() => [])
    const rps: number[][] = variants.map(() => [])
    const p50: number[][] = variants.map(() => [])
    const p99: number[][] = variants.map(() => [])
    for (let r = 0; r < Number(flags.rounds); r++) {
      for (const i of roundOrder(gateways.length, r)) {
        const before = cpuMicros(gateways[i]!.pid)
        const res = await load(gateways[i]!, bodies[i]!, Number(flags.seconds), variants[i]!.name)
        cpu[i]!.push((cpuMicros(gateways[i]!.pid) - before) / res.requests)
        rps[i]!.push(res.rps)
        if (res.p50Ms !== undefined) p50[i]!.push(res.p50Ms), p99[i]!.push(res.p99Ms!)
      }
      const latency = (i: number) => (rate === undefined ? '' : `, p50 ${p50[i]![r]!.toFixed(2)} ms, p99 ${p99[i]![r]!.toFixed(2)} ms`)
      console.log(`round ${r}: ${variants.map((v, i) => `${v.name} ${cpu[i]![r]!.toFixed(0)} µs${latency(i)}`).join(' | ')}`)
    }
    const what = `${flags.mode === 'same' ? 'exact-cache hits' : 'misses'}${flags.stream ? ', streamed' : ''}${rate === undefined ? '' : `, open loop at ${rate} req/s`}`
    console.log(`\nCPU µs per request, ${what}, ${flags.rounds} interleaved rounds of ${flags.seconds} s:`)
    // with the floor among the variants, every line also says how many times the floor's CPU and throughput it had
    const floor = variants.findIndex((v) => v.kind === 'floor')
    const toFloor = (i: number) =>
      floor < 0 || i === floor ? '' : ` (${pairedRatio(cpu[floor]!, cpu[i]!).toFixed(2)}× the floor's CPU, ${pairedRatio(rps[floor]!, rps[i]!).toFixed(2)}× its req/s)`
    for (let i = 0; i < variants.length; i++) {
      const line = `  ${variants[i]!.name}: median ${median(cpu[i]!).toFixed(0)} µs, ${median(rps[i]!).toFixed(0)} req/s${toFloor(i)}`
      if (i === 0) {
        console.log(line)
        continue
      }
      console.log(`${line}; ${describePaired(pairedComparison(cpu[0]!, cpu[i]!), variants[0]!.name)}`)
    }
    if (rate === undefined) return
    console.log(`\nLatency at ${rate} req/s (from each request's intended send time), ${flags.rounds} interleaved rounds:`)
    for (let i = 0; i < variants.length; i++) {
      const line = `  ${variants[i]!.name}: p50 ${median(p50[i]!).toFixed(2)} ms, p99 ${median(p99[i]!).toFixed(2)} ms`
      if (i === 0) console.log(line)
      else console.log(`${line}; p50 ${describePaired(pairedComparison(p50[0]!, p50[i]!), variants[0]!.name, 'ms', 2)}; p99 ${describePaired(pairedComparison(p99[0]!, p99[i]!), variants[0]!.name, 'ms', 2)}`)
    }
  } finally {
    await Promise.allSettled(children.reverse().map((c) => c.stop()))
  }
}

await main()
