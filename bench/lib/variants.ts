import { resolve } from 'node:path'
import { REFERENCE_KINDS, type ReferenceKind } from '../reference-servers.js'
import { benchPolicy, type BenchPolicyCuts } from './targets.js'

/** What one variant of an interleaved A/B (bench/ab.ts) starts. */
export type AbVariant =
  | { name: string; kind: 'sluice'; dist: string; nodeArgs: string[]; env: Record<string, string>; cuts: BenchPolicyCuts; store: AbStore }
  | { name: string; kind: 'floor'; nodeArgs: string[]; env: Record<string, string> }
  | { name: string; kind: 'reference'; reference: ReferenceKind }

/** Where a Sluice variant keeps budgets, rate limits, ledger and exact cache: memory, or Redis with turn (the default) or tick batching. */
export type AbStore = 'memory' | 'redis' | 'redis-tick'

const STORES: readonly AbStore[] = ['memory', 'redis', 'redis-tick']

/**
 * One `--variants` entry of bench/ab.ts: `FOLDER[@POLICY][:STORE] [node flags]`, where FOLDER is a build's output
 * folder (inside the repo, so its imports resolve), POLICY a bench policy as `benchPolicy` reads it (`no-semantic`, `bare`,
 * or several joined with `+`: `no-cache+no-guardrails`, both cut), and STORE
 * `memory` (the default), `redis` (the store's default batching, turn) or `redis-tick`. Without a POLICY the run's own `--no-*` cuts
 * apply. `floor` (the bare pass-through proxy, with optional node flags) and the reference servers (`node-answer`,
 * `hono-answer`, `hono-proxy`) are variants too, so ratios to them come from the same interleaved rounds.
 *
 * @example
 * parseAbVariant('dist@no-semantic:redis --max-semi-space-size=64', '/repo', {})
 * // → { kind: 'sluice', dist: '/repo/dist', cuts: { semantic: true }, store: 'redis', nodeArgs: ['--max-semi-space-size=64'], ... }
 */
export function parseAbVariant(spec: string, root: string, defaultCuts: BenchPolicyCuts): AbVariant {
  const name = spec.trim()
  const [target, ...words] = name.split(/\s+/)
  // NAME=value words set the gateway's environment (GLIBC_TUNABLES=..., say); the rest are node flags
  const env: Record<string, string> = {}
  const nodeArgs: string[] = []
  for (const w of words) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(w)
    if (m) env[m[1]!] = m[2]!
    else nodeArgs.push(w)
  }
  if (!target) throw new Error('--variants: an empty variant')
  if (target === 'floor') return { name, kind: 'floor', nodeArgs, env }
  if ((REFERENCE_KINDS as readonly string[]).includes(target)) {
    if (words.length > 0) throw new Error(`--variants: the reference server "${target}" takes no node flags or environment`)
    return { name, kind: 'reference', reference: target as ReferenceKind }
  }
  const colon = target.lastIndexOf(':')
  const store = colon < 0 ? 'memory' : target.slice(colon + 1)
  if (!(STORES as readonly string[]).includes(store)) throw new Error(`--variants: unknown store "${store}" in "${name}" (one of ${STORES.join(', ')})`)
  const build = colon < 0 ? target : target.slice(0, colon)
  const at = build.lastIndexOf('@')
  const folder = at < 0 ? build : build.slice(0, at)
  const policy = at < 0 ? undefined : build.slice(at + 1)
  if (!folder) throw new Error(`--variants: "${name}" names no build folder`)
  const cuts = policy === undefined ? defaultCuts : benchPolicy(policy, `--variants "${name}"`)
  return { name, kind: 'sluice', dist: resolve(root, folder), nodeArgs, env, cuts, store: store as AbStore }
}
