import { describe, expect, it } from 'vitest'
import { readFileSync } from 'node:fs'
import { parse } from 'yaml'
import { benchPolicy, upstreamModel, withoutLayers } from '../bench/lib/targets.js'
import { parseAbVariant } from '../bench/lib/variants.js'

describe('parseAbVariant (bench/ab.ts --variants)', () => {
  const none = {}

  it('reads a build folder, its node flags and the run-wide cuts', () => {
    const v = parseAbVariant(' node_modules/.ab/base --max-semi-space-size=64 ', '/repo', { semantic: true })
    expect(v).toEqual({
      name: 'node_modules/.ab/base --max-semi-space-size=64',
      kind: 'sluice',
      dist: '/repo/node_modules/.ab/base',
      nodeArgs: ['--max-semi-space-size=64'],
      env: {},
      cuts: { semantic: true },
      store: 'memory'
    })
  })

  it("takes NAME=value words as the gateway's environment, the others as node flags", () => {
    const v = parseAbVariant('dist GLIBC_TUNABLES=glibc.malloc.hugetlb=1 --max-semi-space-size=64', '/repo', none)
    expect(v).toMatchObject({ kind: 'sluice', env: { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' }, nodeArgs: ['--max-semi-space-size=64'] })
  })

  it('gives a variant its own bench policy after @, overriding the run-wide cuts', () => {
    expect(parseAbVariant('dist@bare', '/repo', { semantic: true })).toMatchObject({ kind: 'sluice', dist: '/repo/dist', cuts: { cache: true, guardrails: true, budgets: true } })
    expect(parseAbVariant('dist@full', '/repo', { semantic: true })).toMatchObject({ cuts: {} })
    expect(parseAbVariant('dist@no-budgets --expose-gc', '/repo', none)).toMatchObject({ cuts: { budgets: true }, nodeArgs: ['--expose-gc'] })
  })

  it('joins policies with +, cutting every layer they name', () => {
    expect(parseAbVariant('dist@no-cache+no-guardrails', '/repo', none)).toMatchObject({ cuts: { cache: true, guardrails: true } })
    expect(parseAbVariant('dist@no-semantic+no-budgets', '/repo', { guardrails: true })).toMatchObject({ cuts: { semantic: true, budgets: true } })
    expect(() => parseAbVariant('dist@no-cache+nope', '/repo', none)).toThrow(/unknown policy "nope"/)
  })

  it('reads a store after :, memory by default', () => {
    expect(parseAbVariant('dist:redis', '/repo', none)).toMatchObject({ kind: 'sluice', dist: '/repo/dist', store: 'redis', cuts: {} })
    expect(parseAbVariant('dist@no-semantic+no-budgets:redis-tick --expose-gc', '/repo', none)).toMatchObject({
      dist: '/repo/dist',
      store: 'redis-tick',
      cuts: { semantic: true, budgets: true },
      nodeArgs: ['--expose-gc']
    })
    expect(parseAbVariant('dist@bare:memory', '/repo', none)).toMatchObject({ store: 'memory', cuts: { cache: true } })
    expect(() => parseAbVariant('dist:qdrant', '/repo', none)).toThrow(/unknown store "qdrant".*redis-tick/)
  })

  it('knows the floor and the reference servers', () => {
    expect(parseAbVariant('floor', '/repo', none)).toEqual({ name: 'floor', kind: 'floor', nodeArgs: [], env: {} })
    expect(parseAbVariant('floor GLIBC_TUNABLES=glibc.malloc.hugetlb=1', '/repo', none)).toMatchObject({ kind: 'floor', nodeArgs: [], env: { GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1' } })
    expect(() => parseAbVariant('hono-proxy FOO=1', '/repo', none)).toThrow(/takes no node flags or environment/)
    expect(parseAbVariant('floor --max-semi-space-size=64', '/repo', none)).toMatchObject({ kind: 'floor', nodeArgs: ['--max-semi-space-size=64'] })
    expect(parseAbVariant('hono-proxy', '/repo', none)).toEqual({ name: 'hono-proxy', kind: 'reference', reference: 'hono-proxy' })
  })

  it('refuses what it cannot start, naming it', () => {
    expect(() => parseAbVariant('dist@no-such', '/repo', none)).toThrow(/unknown policy "no-such".*no-semantic/)
    expect(() => parseAbVariant('@bare', '/repo', none)).toThrow(/names no build folder/)
    expect(() => parseAbVariant('  ', '/repo', none)).toThrow(/empty variant/)
    expect(() => parseAbVariant('hono-answer --expose-gc', '/repo', none)).toThrow(/takes no node flags/)
  })
})

describe('benchPolicy (bench/ab.ts, bench/ttfb-phases.ts, bench/ttfb-profile.ts)', () => {
  it('reads one bench policy or several joined with +, and names the flag for an unknown one', () => {
    expect(benchPolicy('full', '--policy')).toEqual({})
    expect(benchPolicy('bare', '--policy')).toEqual({ cache: true, guardrails: true, budgets: true })
    expect(benchPolicy('no-semantic+no-guardrails', '--policy')).toEqual({ semantic: true, guardrails: true })
    expect(() => benchPolicy('toString', '--policy')).toThrow(/^--policy: unknown policy "toString" \(one of full, no-semantic/)
    expect(() => benchPolicy('bare+', '--variants')).toThrow(/^--variants: unknown policy ""/)
  })

  it('adds a request rate limit for `rate`, to the full policy or a cut one', () => {
    const text = readFileSync(new URL('../bench/policies/bench.yaml', import.meta.url), 'utf8')
    expect(parse(withoutLayers(text, benchPolicy('full', '-'))).rate_limits).toEqual([])
    const rated = parse(withoutLayers(text, benchPolicy('rate+no-budgets', '-')))
    expect(rated.rate_limits).toEqual([{ scope: 'key', rpm: 1_000_000_000 }])
    expect(rated.budgets).toEqual([])
  })
})

describe('upstreamModel (what the floor and reference servers are sent)', () => {
  it('names, for every model alias of the bench configs, the upstream model those configs give it', () => {
    for (const file of ['sluice-memory.yaml', 'sluice-redis.yaml']) {
      const config = parse(readFileSync(new URL(`../bench/config/${file}`, import.meta.url), 'utf8')) as { models: Record<string, { model: string }> }
      for (const [alias, m] of Object.entries(config.models)) expect(upstreamModel(alias), `${file}: ${alias}`).toBe(m.model)
    }
  })

  it('refuses an alias the bench configs do not have', () => {
    expect(() => upstreamModel('gpt-5')).toThrow(/no bench model alias "gpt-5"/)
  })
})
