/**
 * src/metrics/deferred.ts: counters and histograms that hand their updates to prom-client when read must expose
 * exactly what prom-client's own metrics do after the same updates, and fail the same calls.
 */
import { Counter, Histogram, Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { counter, histogram } from '../src/metrics/deferred.js'
import { seededRandom } from '../src/random.js'

/** The same metrics twice: prom-client's own in one registry, the deferred ones in another. */
function pair() {
  const plain = new Registry()
  const deferred = new Registry()
  const c = { name: 'c_total', help: 'c', labelNames: ['team', 'model', 'tier'] as const }
  const h = { name: 'h_seconds', help: 'h', labelNames: ['provider'] as const, buckets: [0.001, 0.01, 0.1, 1] }
  const u = { name: 'u_total', help: 'u' }
  const uh = { name: 'uh_seconds', help: 'uh', buckets: [0.5, 2] }
  return {
    plain,
    deferred,
    counters: [new Counter({ ...c, registers: [plain] }), counter({ ...c, registers: [deferred] })],
    histograms: [new Histogram({ ...h, registers: [plain] }), histogram({ ...h, registers: [deferred] })],
    unlabeled: [new Counter({ ...u, registers: [plain] }), counter({ ...u, registers: [deferred] })],
    unlabeledHistograms: [new Histogram({ ...uh, registers: [plain] }), histogram({ ...uh, registers: [deferred] })]
  }
}

type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

/**
 * Same metrics, series and labels, and the same values up to the last bits of a float: a counter's increments
 * are summed before they reach prom-client, so fractional ones (USD) may round differently in the 16th digit.
 */
function expectSameMetrics(actual: MetricsJson, expected: MetricsJson): void {
  const flat = (ms: MetricsJson) =>
    ms.flatMap((m) => m.values.map((v) => ({ key: `${m.name} ${(v as { metricName?: string }).metricName ?? ''} ${JSON.stringify(v.labels)}`, value: v.value })))
  const a = flat(actual)
  const e = flat(expected)
  expect(a.map((x) => x.key)).toEqual(e.map((x) => x.key))
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]!.value - e[i]!.value)).toBeLessThanOrEqual(1e-12 * Math.max(1, Math.abs(e[i]!.value)))
}

describe('deferred metric updates', () => {
  it('expose what prom-client exposes after the same updates, read at any point', async () => {
    const m = pair()
    const rand = seededRandom(3)
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)]!
    for (let step = 0; step < 3000; step++) {
      const op = rand()
      // the same call on both; label values include numbers, '' and values that would collide if joined
      const labels: Record<string, string | number> = {}
      if (rand() < 0.9) labels.team = pick(['a', 'b', 'a\u0000b', ''])
      if (rand() < 0.9) labels.model = pick(['x', 'b\u0000', 'y'])
      if (rand() < 0.5) labels.tier = pick([0, '0', 1])
      const value = pick([undefined, 0, 1, 2.5, 0.000123])
      const provider = pick(['p', 'q'])
      for (const i of [0, 1]) {
        if (op < 0.4) m.counters[i]!.inc(labels, value as number)
        else if (op < 0.7) m.histograms[i]!.observe({ provider }, value ?? 0.05)
        else if (op < 0.8) m.unlabeled[i]!.inc(value as number)
        else if (op < 0.9) m.unlabeledHistograms[i]!.observe(value ?? 3)
        else if (op < 0.905) m.counters[i]!.reset()
        else if (op < 0.91) m.histograms[i]!.remove({ provider: 'p' })
        else if (op < 0.915) m.histograms[i]!.zero({ provider: 'q' })
      }
      if (step % 700 === 0 || step === 2999) expectSameMetrics(await m.deferred.getMetricsAsJSON(), await m.plain.getMetricsAsJSON())
    }
  })

  it('show a series from its first update, a zero one too', async () => {
    const m = pair()
    m.counters[1]!.inc({ team: 'free', model: 'local', tier: 0 }, 0)
    expect(await m.deferred.metrics()).toContain('c_total{team="free",model="local",tier="0"} 0')
    m.counters[1]!.inc({ team: 'free', model: 'local', tier: 0 }, 2)
    expect(await m.deferred.metrics()).toContain('c_total{team="free",model="local",tier="0"} 2')
  })

  it('refuse what prom-client refuses, on the call itself', () => {
    const m = pair()
    for (const i of [0, 1]) {
      expect(() => m.counters[i]!.inc({ team: 'a', nope: 'x' } as never)).toThrow('Added label "nope" is not included in initial labelset')
      expect(() => m.counters[i]!.inc({ team: 'a' }, -1)).toThrow('It is not possible to decrease a counter')
      expect(() => m.counters[i]!.inc({ team: 'a' }, Infinity)).toThrow('Value is not a valid number')
      expect(() => m.histograms[i]!.observe({ provider: 'p' }, Number.NaN)).toThrow('Value is not a valid number')
      expect(() => m.histograms[i]!.observe({ provider: 'p', other: 1 } as never, 1)).toThrow('Added label "other"')
    }
  })

  it('leave metrics with exemplars to prom-client (their inc takes one options object)', async () => {
    const registry = new Registry<typeof Registry.OPENMETRICS_CONTENT_TYPE>()
    registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
    const c = counter({ name: 'x_total', help: 'x', labelNames: ['team'] as const, enableExemplars: true, registers: [registry] })
    c.inc({ labels: { team: 'a' }, value: 2, exemplarLabels: { trace: 't1' } as never })
    expect(await registry.metrics()).toContain('x_total{team="a"} 2 # {trace="t1"} 2')
  })

  it('hand over a busy series without waiting for a scrape, so memory stays bounded', async () => {
    const m = pair()
    for (let i = 0; i < 5000; i++) m.histograms[1]!.observe({ provider: 'p' }, 0.002)
    // prom-client's own map, read without collecting: the first batch landed on the next turn
    const own = () => (m.histograms[1] as unknown as { hashMap: Record<string, { count: number }> }).hashMap
    expect(Object.values(own()).reduce((n, s) => n + s.count, 0)).toBe(0)
    await new Promise((r) => setImmediate(r))
    expect(Object.values(own()).reduce((n, s) => n + s.count, 0)).toBe(5000)
  })
})
