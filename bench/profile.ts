/**
 * CPU profile of the built gateway under closed-loop load, summarised by module.
 *
 *   node --import tsx bench/profile.ts                         # cache misses, memory store, 8 s
 *   node --import tsx bench/profile.ts --mode same --seconds 5 # exact-cache hits
 *   node --import tsx bench/profile.ts --no-build --keep       # reuse dist/, keep the .cpuprofile
 *   node --import tsx bench/profile.ts --no-semantic           # the bench policy without the semantic cache
 *   node --import tsx bench/profile.ts --no-guardrails         # ... without its guardrails section (guard cost A/B)
 *   node --import tsx bench/profile.ts --no-budgets --no-cache # ... without budgets / without both cache layers
 *   node --import tsx bench/profile.ts --sessions 1000         # requests spread over 1,000 session ids (x-sluice-session)
 *
 * Starts the fake upstream and `node --cpu-prof dist/src/cli.js start` on a bench config, warms up, loads
 * it, stops it with SIGTERM (which writes the profile), then prints CPU µs per request, the top functions
 * by self time, and self and inclusive time per module bucket (src/<folder>, routes/, node_modules/<pkg>,
 * node internals, GC). Open the kept .cpuprofile in Chrome DevTools or speedscope for a flame graph.
 */
import { mkdtemp, readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { chatBody } from './lib/bodies.js'
import { closedLoop } from './lib/load.js'
import { cpuMicros, type Child } from './lib/procs.js'
import { BENCH_HEADERS, LAYER_CUT_OPTIONS, buildSluice, layerCutsOf, startBackends, startSluice } from './lib/targets.js'

const { values: flags } = parseArgs({
  options: {
    mode: { type: 'string', default: 'unique' },
    store: { type: 'string', default: 'memory' },
    // the Redis store's batch_writes (turn, the default, or tick)
    'batch-writes': { type: 'string', default: 'turn' },
    seconds: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '32' },
    top: { type: 'string', default: '30' },
    stream: { type: 'boolean', default: false },
    // the bench config's model alias to ask for (bench-long: 500-token answers, 500 chunks when streamed)
    // the request's max_tokens (the fake answers at most this many tokens)
    'max-tokens': { type: 'string', default: '16' },
    // earlier user/assistant turns in every request (the same for all): a long agent conversation
    history: { type: 'string', default: '0' },
    model: { type: 'string', default: 'gpt-4o-mini' },
    'no-build': { type: 'boolean', default: false },
    'no-profile': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    // the bench policy without its semantic layer, to see the rest of a miss clearly
    ...LAYER_CUT_OPTIONS,
    // requests carry x-sluice-session, spread over this many session ids (0: none, as in `npm run bench`): the
    // bench policy's session budget and the running total then apply
    sessions: { type: 'string', default: '0' },
    // another build's output folder (a copy of dist/ inside the repo, so node_modules resolve), for A/B runs
    dist: { type: 'string' }
  }
})

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}
interface Profile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
}

/** Which bucket a script URL belongs to: src/<folder>, routes/, node_modules/<pkg>, node:internal, (gc)... */
function bucket(url: string, name: string): string {
  if (!url) return name.startsWith('(') ? name : '(native)'
  // dist/ or an A/B copy of it under node_modules/.ab/<name>/ (--dist)
  const own = /\/(?:dist|node_modules\/\.ab\/[^/]+)\/(src|routes)\/(?:([^/]+)\/)?/.exec(url)
  if (own) return own[1] === 'routes' ? 'routes/' : own[2] && !own[2].endsWith('.js') ? `src/${own[2]}/` : 'src/*.ts'
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)
  if (nm) return nm[1]!
  if (url.startsWith('node:')) return 'node:internal'
  return url
}

export function summarise(p: Profile, top: number): string {
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const self = new Map<number, number>()
  let total = 0
  for (let i = 0; i < p.samples.length; i++) {
    const dt = p.timeDeltas[i] ?? 0
    self.set(p.samples[i]!, (self.get(p.samples[i]!) ?? 0) + dt)
    total += dt
  }
  const idle = [...self].filter(([id]) => byId.get(id)!.callFrame.functionName === '(idle)').reduce((a, [, t]) => a + t, 0)
  const busy = total - idle
  const fnSelf = new Map<string, number>()
  const bucketSelf = new Map<string, number>()
  const bucketIncl = new Map<string, number>()
  for (const [id, t] of self) {
    const n = byId.get(id)!
    if (n.callFrame.functionName === '(idle)') continue
    const b = bucket(n.callFrame.url, n.callFrame.functionName)
    const key = `${n.callFrame.functionName || '(anonymous)'} ${n.callFrame.url.replace(/^.*\/(dist|node_modules)\//, '$1/').replace(/^node_modules\/\.ab\/[^/]+\//, 'dist/')}:${n.callFrame.lineNumber + 1}`
    fnSelf.set(key, (fnSelf.get(key) ?? 0) + t)
    bucketSelf.set(b, (bucketSelf.get(b) ?? 0) + t)
    // Inclusive: charge each bucket once per sample on the stack.
    const seen = new Set<string>()
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const c = byId.get(cur)!
      const cb = bucket(c.callFrame.url, c.callFrame.functionName)
      if (cb === '(root)' || seen.has(cb)) continue
      seen.add(cb)
      bucketIncl.set(cb, (bucketIncl.get(cb) ?? 0) + t)
    }
  }
  const pct = (t: number) => ((100 * t) / busy).toFixed(1).padStart(5)
  const lines = [`busy ${(busy / 1e3).toFixed(0)} ms of ${(total / 1e3).toFixed(0)} ms sampled`, '', 'self % | function']
  for (const [k, t] of [...fnSelf].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pct(t)} | ${k}`)
  lines.push('', 'self % | incl % | module')
  for (const [b, t] of [...bucketIncl].sort((a, b) => b[1] - a[1])) lines.push(`${pct(bucketSelf.get(b) ?? 0)} | ${pct(t)} | ${b}`)
  return lines.join('\n')
}

/** The layers the flags turn off (for A/B runs of one layer's cost). */
const cuts = layerCutsOf(flags)

async function main(): Promise<void> {
  if (!flags['no-build']) await buildSluice()
  const children: Child[] = []
  try {
    const { upstream, redisUrl } = await startBackends(flags.store!, children)
    const dir = await mkdtemp(join(tmpdir(), 'sluice-prof-'))
    const nodeArgs = flags['no-profile'] ? [] : ['--cpu-prof', `--cpu-prof-dir=${dir}`]
    const sluice = await startSluice(flags.store === 'redis' ? 'sluice-redis' : 'sluice-memory', {
      upstream,
      redisUrl,
      batchWrites: batchWrites(flags['batch-writes']!),
      nodeArgs,
      dist: flags.dist ? resolve(flags.dist) : undefined,
      cuts
    })
    children.push(sluice)
    const body = chatBody({ maxTokens: Number(flags['max-tokens']), history: Number(flags.history), model: flags.model, mode: flags.mode === 'same' ? 'same' : 'unique', stream: flags.stream })
    const sessions = Number(flags.sessions)
    let offset = Math.floor(Math.random() * 1e9)
    const spec = (seconds: number) => {
      const base = (offset += 10_000_000)
      return closedLoop(
        {
          origin: `http://127.0.0.1:${sluice.port}`,
          path: '/v1/chat/completions',
          headers: BENCH_HEADERS,
          body: (i) => body(i + base),
          headersFor: sessions > 0 ? (i) => ({ 'x-sluice-session': `bench-${(i + base) % sessions}` }) : undefined
        },
        { connections: Number(flags.connections), seconds }
      )
    }
    await spec(Number(flags.warmup))
    const cpu0 = cpuMicros(sluice.pid)
    const r = await spec(Number(flags.seconds))
    const cpu = cpuMicros(sluice.pid) - cpu0
    console.log(`${flags.mode} ${flags.store}${flags.stream ? ' stream' : ''}: ${r.rps.toFixed(0)} req/s, ${(cpu / r.requests).toFixed(0)} µs CPU/req, non2xx ${r.non2xx}, errors ${r.errors}`)
    await sluice.stop()
    children.pop()
    if (flags['no-profile']) return
    const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'))
    if (!file) throw new Error(`no .cpuprofile in ${dir} (did the gateway exit cleanly?)`)
    console.log(summarise(JSON.parse(await readFile(join(dir, file), 'utf8')) as Profile, Number(flags.top)))
    if (flags.keep) console.log(`profile: ${join(dir, file)}`)
  } finally {
    await Promise.allSettled(children.reverse().map((c) => c.stop()))
  }
}

await main()

/** `--batch-writes`, checked: a misspelt value would otherwise profile the default silently. */
function batchWrites(value: string): 'tick' | 'turn' {
  if (value === 'tick' || value === 'turn') return value
  throw new Error(`--batch-writes: expected turn or tick, got ${value}`)
}
