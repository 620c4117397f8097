import { readFileSync, readdirSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'

/** Every metric name the gateway defines in src/ (counters, gauges, histograms). */
function definedMetrics(dir = 'src'): Set<string> {
  const names = new Set<string>()
  for (const f of readdirSync(dir)) {
    const p = join(dir, f)
    if (statSync(p).isDirectory()) for (const n of definedMetrics(p)) names.add(n)
    else if (p.endsWith('.ts')) for (const m of readFileSync(p, 'utf8').matchAll(/'(sluice_[a-z_]+)'/g)) names.add(m[1]!)
  }
  return names
}

describe('config/grafana-dashboard.json', () => {
  const dash = JSON.parse(readFileSync('config/grafana-dashboard.json', 'utf8'))
  const panels = dash.panels.filter((p: any) => p.type !== 'row')
  const exprs: string[] = panels.flatMap((p: any) => p.targets.map((t: any) => t.expr))

  it('queries only metrics the gateway exports', () => {
    const defined = definedMetrics()
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(sluice_[a-z_]+?)(?:_bucket|_sum|_count)?\b(?=[{[)\s]|$)/g)].map((m) => m[1]!)))
    expect(used.size).toBeGreaterThan(20)
    expect([...used].filter((n) => !defined.has(n))).toEqual([])
  })

  it('covers spend, cache, routing, budgets and guardrails, with a Prometheus datasource variable', () => {
    for (const name of ['sluice_cost_usd_total', 'sluice_cache_saved_usd_total', 'sluice_cascade_escalations_total', 'sluice_budget_rejections_total', 'sluice_guardrail_actions_total']) {
      expect(exprs.some((e) => e.includes(name))).toBe(true)
    }
    expect(dash.templating.list.map((v: any) => v.name)).toEqual(['datasource', 'team'])
    expect(new Set(dash.panels.map((p: any) => p.id)).size).toBe(dash.panels.length)
    for (const p of panels) expect(p.datasource.uid).toBe('${datasource}')
  })
})
