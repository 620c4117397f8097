/**
 * Starting the processes a benchmark talks to: the fake upstream, the floor proxy, Sluice with a bench
 * config, and the optional peer gateway. All listen on 127.0.0.1 only.
 */
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { request } from 'undici'
import type { BodyReading, ReferenceKind } from '../reference-servers.js'
import { freePort, startChild, startRedis, type Child } from './procs.js'

export const ROOT = resolve(import.meta.dirname, '..', '..')
const BENCH = join(ROOT, 'bench')
const tsx = (script: string) => ['--import', 'tsx', script]

/** The virtual key the bench configs give the `bench` team. */
export const BENCH_KEY = 'sk-bench-0123456789'
/** A key whose team budget is spent after a few requests. */
export const TIGHT_KEY = 'sk-tight-0123456789'

/**
 * The upstream model that bench/config's `bench-trickle` alias names: the fake reads its behaviour from the part
 * after `@` (8 tokens, 2 ms apart). A target without the alias (the floor, the reference servers) must be sent this
 * name, or the fake answers its default at once and that target's stream is not the same stream.
 */
const TRICKLE_UPSTREAM = 'gpt-4o-mini@tokens=8,chunk_delay_ms=2'

/** What each model alias of the bench configs (bench/config/sluice-*.yaml) asks the fake for. */
const UPSTREAM_MODELS: Readonly<Record<string, string>> = Object.freeze({
  'gpt-4o-mini': 'gpt-4o-mini',
  'bench-trickle': TRICKLE_UPSTREAM,
  'bench-long': 'gpt-4o-mini@tokens=500'
})

/**
 * The model a target without the bench config's aliases (the floor, a reference server) must be sent for the same
 * answer as Sluice gets for `alias`: the fake reads tokens and delays from the name.
 *
 * @example
 * upstreamModel('bench-trickle') // 'gpt-4o-mini@tokens=8,chunk_delay_ms=2'
 */
export function upstreamModel(alias: string): string {
  const model = UPSTREAM_MODELS[alias]
  if (model === undefined) throw new Error(`no bench model alias "${alias}"; known: ${Object.keys(UPSTREAM_MODELS).join(', ')}`)
  return model
}

/** The headers of a chat request to Sluice with the bench key. */
export const BENCH_HEADERS: Readonly<Record<string, string>> = Object.freeze({ 'content-type': 'application/json', authorization: `Bearer ${BENCH_KEY}` })

async function answers(origin: string, path: string, init: { method?: 'GET' | 'POST'; body?: string; headers?: Record<string, string> } = {}): Promise<boolean> {
  const res = await request(origin + path, { method: init.method ?? 'GET', body: init.body, headers: init.headers, headersTimeout: 2_000, bodyTimeout: 2_000 })
  await res.body.dump()
  return res.statusCode >= 200 && res.statusCode < 300
}

/** Whether `origin` answers a small chat completion with the bench key: a target that serves but cannot reach the fake is not ready. */
function answersChat(origin: string): Promise<boolean> {
  return answers(origin, '/v1/chat/completions', {
    method: 'POST',
    headers: BENCH_HEADERS,
    body: '{"model":"gpt-4o-mini","max_tokens":4,"messages":[{"role":"user","content":"ready?"}]}'
  })
}

export async function startFake(): Promise<Child> {
  const port = await freePort()
  return startChild({
    name: 'fake-upstream',
    command: process.execPath,
    args: [...tsx('bench/fake-upstream.ts'), '--port', String(port)],
    cwd: ROOT,
    port,
    ready: () => answers(`http://127.0.0.1:${port}`, '/v1/models')
  })
}

/**
 * The fake upstream, and a throwaway redis-server when the store is Redis: what a Sluice target needs around it.
 * Each started child is pushed onto `children` at once, so the caller stops it even if a later start fails.
 */
export async function startBackends(store: string, children: Child[]): Promise<{ upstream: string; redisUrl?: string }> {
  const fake = await startFake()
  children.push(fake)
  const upstream = `http://127.0.0.1:${fake.port}`
  if (store !== 'redis') return { upstream }
  const redis = await startRedis()
  children.push(redis)
  return { upstream, redisUrl: `redis://127.0.0.1:${redis.port}` }
}

export async function startFloor(upstream: string, opts: { nodeArgs?: string[]; env?: Record<string, string> } = {}): Promise<Child> {
  const port = await freePort()
  return startChild({
    name: 'floor',
    command: process.execPath,
    args: [...(opts.nodeArgs ?? []), ...tsx('bench/baseline-proxy.ts'), '--port', String(port), '--upstream', upstream],
    cwd: ROOT,
    port,
    env: opts.env,
    ready: () => answers(`http://127.0.0.1:${port}`, '/v1/models')
  })
}

/**
 * A reference server (bench/reference-servers.ts): `node-answer` (node:http answering a constant completion, the
 * ceiling for a cache hit), `hono-answer` (the same from Hono) or `hono-proxy` (the least a Hono gateway that reads
 * what it forwards costs); `body: 'hono'` makes a Hono one read its body with `c.req.json()`.
 *
 * @example
 * children.push(await startReference('hono-proxy', upstream))
 */
export async function startReference(kind: ReferenceKind, upstream: string, body: BodyReading = 'node'): Promise<Child> {
  const port = await freePort()
  return startChild({
    name: kind,
    command: process.execPath,
    args: [...tsx('bench/reference-servers.ts'), '--kind', kind, '--port', String(port), '--upstream', upstream, '--body', body],
    cwd: ROOT,
    port,
    env: { NODE_ENV: 'production' },
    ready: () => answersChat(`http://127.0.0.1:${port}`)
  })
}

/** Whether the gateway's CLI exists yet (the bench develops against the floor alone until it does). */
export const sluiceAvailable = () => existsSync(join(ROOT, 'src', 'cli.ts'))

/**
 * Build Sluice (`npm run build` → dist/) so the bench measures what users run: plain node on the compiled
 * code, without tsx's loader thread (about 30 MB of RSS) and its per-module transpile.
 */
export async function buildSluice(): Promise<void> {
  const { execFile } = await import('node:child_process')
  await new Promise<void>((resolve, reject) =>
    execFile('npm', ['run', 'build'], { cwd: ROOT }, (err, _out, stderr) => (err ? reject(new Error(`npm run build failed:\n${stderr}`)) : resolve()))
  )
}

/**
 * Render bench/config/<name>.yaml and bench/policies/* into a temp folder with the BENCH_* placeholders
 * filled in (the port must be a number, which env interpolation in the loader would leave a string).
 */
export async function renderConfig(name: string, vars: Record<string, string>, editPolicy?: (file: string, text: string) => string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-bench-'))
  await mkdir(join(dir, 'config'))
  await mkdir(join(dir, 'policies'))
  const fill = (text: string) => text.replace(/\$\{(BENCH_[A-Z_]+)\}/g, (m, k: string) => vars[k] ?? m)
  for (const f of await readdir(join(BENCH, 'policies'))) {
    const text = fill(await readFile(join(BENCH, 'policies', f), 'utf8'))
    await writeFile(join(dir, 'policies', f), editPolicy ? editPolicy(f, text) : text)
  }
  const out = join(dir, 'config', `${name}.yaml`)
  await writeFile(out, fill(await readFile(join(BENCH, 'config', `${name}.yaml`), 'utf8')))
  return out
}

/** Layers of the bench policy (bench/policies/bench.yaml) a run can turn off, to measure what each costs. */
export interface BenchPolicyCuts {
  semantic?: boolean
  /** Both cache layers. */
  cache?: boolean
  guardrails?: boolean
  budgets?: boolean
  /** Not a cut: adds a request rate limit too high to refuse (`rate_limits`, one rpm bucket per key), to measure its check. */
  rateLimits?: boolean
}

/** `--no-semantic`, `--no-cache`, `--no-guardrails` and `--no-budgets`, as bench/profile.ts and bench/ab.ts take them (parseArgs options). */
export const LAYER_CUT_OPTIONS = {
  'no-semantic': { type: 'boolean', default: false },
  'no-cache': { type: 'boolean', default: false },
  'no-guardrails': { type: 'boolean', default: false },
  'no-budgets': { type: 'boolean', default: false }
} as const

/** The cuts those flags ask for. */
export function layerCutsOf(flags: { 'no-semantic'?: boolean; 'no-cache'?: boolean; 'no-guardrails'?: boolean; 'no-budgets'?: boolean }): BenchPolicyCuts {
  return { semantic: flags['no-semantic'], cache: flags['no-cache'], guardrails: flags['no-guardrails'], budgets: flags['no-budgets'] }
}

/** The bench policy and its variants by name, as bench/ttfb-phases.ts and bench/ttfb-profile.ts take them. */
export const BENCH_POLICIES: Record<string, BenchPolicyCuts> = {
  full: {},
  'no-semantic': { semantic: true },
  'no-cache': { cache: true },
  'no-guardrails': { guardrails: true },
  'no-budgets': { budgets: true },
  // the full policy plus a key rpm limit (`dist@rate`, `dist@rate+no-semantic`)
  rate: { rateLimits: true },
  bare: { cache: true, guardrails: true, budgets: true }
}

/**
 * The cuts a bench policy name asks for: one of `BENCH_POLICIES`, or several joined with `+` (the union of their cuts,
 * so layers can be taken away one after another). `where` names the flag or variant in the error for an unknown name.
 *
 * @example
 * benchPolicy('no-semantic+no-guardrails', '--policy') // { semantic: true, guardrails: true }
 */
export function benchPolicy(name: string, where: string): BenchPolicyCuts {
  const cuts: BenchPolicyCuts = {}
  for (const part of name.split('+')) {
    if (!Object.hasOwn(BENCH_POLICIES, part)) {
      throw new Error(`${where}: unknown policy "${part}" (one of ${Object.keys(BENCH_POLICIES).join(', ')}, joined with +)`)
    }
    Object.assign(cuts, BENCH_POLICIES[part])
  }
  return cuts
}

/**
 * The bench policy's text without the layers named in `cuts` (and with its rate limit, `rateLimits`).
 *
 * @example
 * withoutLayers(await readFile('bench/policies/bench.yaml', 'utf8'), { cache: true })
 */
export function withoutLayers(text: string, cuts: BenchPolicyCuts): string {
  let out = text
  if (cuts.semantic || cuts.cache) out = out.replace('semantic: { enabled: true }', 'semantic: { enabled: false }')
  if (cuts.cache) out = out.replace('exact: { enabled: true }', 'exact: { enabled: false }')
  // budgets are the policy's first block, up to rate_limits
  if (cuts.budgets) out = out.replace(/\nbudgets:[\s\S]*?\nrate_limits/, '\nbudgets: []\nrate_limits')
  if (cuts.rateLimits) out = out.replace('\nrate_limits: []', '\nrate_limits: [{ scope: key, rpm: 1000000000 }]')
  // the guardrails section is the policy's last block: drop it whole
  if (cuts.guardrails) out = out.replace(/\nguardrails:[\s\S]*$/, '\n')
  return out
}

/**
 * Start Sluice from a bench config; ready once a real chat request succeeds through it.
 *
 * @example
 * const sluice = await startSluice('sluice-memory', { upstream: fake.url })
 */
export async function startSluice(
  configName: string,
  opts: {
    upstream: string
    redisUrl?: string
    /** The Redis store's `batch_writes` (default turn); a `tick` gateway keeps its keys under its own prefix. */
    batchWrites?: 'tick' | 'turn'
    /** The Redis key prefix, for gateways that must not share keys (default `bench:`, or `bench-tick:` with tick batching). */
    redisPrefix?: string
    env?: Record<string, string>
    nodeArgs?: string[]
    fromSource?: boolean
    dist?: string
    /** Layers of the bench policy to turn off (`withoutLayers`). */
    cuts?: BenchPolicyCuts
  }
): Promise<Child> {
  const port = await freePort()
  const batching = opts.batchWrites ?? 'turn'
  const file = await renderConfig(configName, {
    BENCH_PORT: String(port),
    BENCH_UPSTREAM: opts.upstream,
    BENCH_REDIS_URL: opts.redisUrl ?? '',
    BENCH_BATCH_WRITES: batching,
    BENCH_REDIS_PREFIX: opts.redisPrefix ?? (batching === 'turn' ? 'bench:' : `bench-${batching}:`)
  }, opts.cuts ? (f, text) => (f === 'bench.yaml' ? withoutLayers(text, opts.cuts!) : text) : undefined)
  const origin = `http://127.0.0.1:${port}`
  return startChild({
    name: configName,
    command: process.execPath,
    // The built CLI (see buildSluice); fromSource runs src/ under tsx for a quick look without a build.
    args: [...(opts.nodeArgs ?? []), ...(opts.fromSource ? tsx('src/cli.ts') : [join(opts.dist ?? join(ROOT, 'dist'), 'src', 'cli.js')]), 'start', '--config', file],
    cwd: ROOT,
    port,
    env: { NODE_ENV: 'production', ...opts.env },
    timeoutMs: 60_000,
    ready: () => answersChat(origin)
  })
}

/** The optional peer (Portkey's gateway), installed in bench/peer/ with its own package.json. */
export const peerAvailable = () => existsSync(join(BENCH, 'peer', 'node_modules', '@portkey-ai', 'gateway'))

/**
 * Start the peer: bench/peer/start.mjs runs Portkey's gateway in plain node and routes every request to
 * `upstream` with Portkey's own provider and custom-host headers; ready once a chat request succeeds through it.
 *
 * @example
 * if (peerAvailable()) children.push(await startPeer(upstream))
 */
export async function startPeer(upstream: string): Promise<Child> {
  const port = await freePort()
  return startChild({
    name: 'peer',
    command: process.execPath,
    args: [join(BENCH, 'peer', 'start.mjs'), '--port', String(port), '--upstream', upstream],
    cwd: join(BENCH, 'peer'),
    port,
    // As for Sluice; with --headless Portkey serves no web UI either way.
    env: { NODE_ENV: 'production' },
    timeoutMs: 60_000,
    // A real chat request, so a peer that serves but cannot reach the fake fails here, not as non-2xx later.
    ready: () => answersChat(`http://127.0.0.1:${port}`)
  })
}
