import type { LedgerEntry } from './types.js'

export type GroupBy = 'team' | 'key' | 'user' | 'session' | 'agent' | 'tag' | 'model' | 'alias' | 'day' | 'provider'

export interface SpendTotals {
  requests: number
  attempts: number
  cost_usd: number
  saved_usd: number
  tokens: { input: number; output: number; cached_input: number; cache_write: number }
}

/**
 * Sum ledger entries, optionally grouped. `requests` counts distinct request ids; `attempts` counts entries.
 *
 * @example
 * summarizeSpend(entries, 'model') // { total: {...}, groups: [{ key: 'gpt-4o-mini', ...totals }] }
 */
export function summarizeSpend(entries: LedgerEntry[], groupBy?: GroupBy) {
  const total = newTotals()
  const groups = new Map<string, SpendTotals & { ids: Set<string> }>()
  const totalIds = new Set<string>()
  for (const e of entries) {
    add(total, e)
    totalIds.add(e.request_id)
    if (!groupBy) continue
    for (const key of groupKeys(e, groupBy)) {
      let g = groups.get(key)
      if (!g) groups.set(key, (g = { ...newTotals(), ids: new Set() }))
      add(g, e)
      g.ids.add(e.request_id)
    }
  }
  total.requests = totalIds.size
  return {
    total: roundTotals(total),
    groups: groupBy
      ? [...groups.entries()]
          .map(([key, { ids, ...t }]) => ({ key, ...roundTotals({ ...t, requests: ids.size }) }))
          .sort((a, b) => (groupBy === 'day' ? a.key.localeCompare(b.key) : b.cost_usd - a.cost_usd))
      : undefined
  }
}

function groupKeys(e: LedgerEntry, by: GroupBy): string[] {
  switch (by) {
    case 'day':
      return [new Date(e.ts).toISOString().slice(0, 10)]
    case 'key':
      return [e.key_id]
    case 'tag':
      return e.tags?.length ? e.tags : ['(none)']
    default:
      return [String(e[by] ?? '(none)')]
  }
}

function newTotals(): SpendTotals {
  return { requests: 0, attempts: 0, cost_usd: 0, saved_usd: 0, tokens: { input: 0, output: 0, cached_input: 0, cache_write: 0 } }
}

function add(t: SpendTotals, e: LedgerEntry) {
  t.attempts++
  t.cost_usd += e.cost_usd
  t.saved_usd += e.saved_usd ?? 0
  t.tokens.input += e.tokens.input
  t.tokens.output += e.tokens.output
  t.tokens.cached_input += e.tokens.cached_input
  t.tokens.cache_write += e.tokens.cache_write
}

function roundTotals(t: SpendTotals): SpendTotals {
  return { ...t, cost_usd: Math.round(t.cost_usd * 1e9) / 1e9, saved_usd: Math.round(t.saved_usd * 1e9) / 1e9 }
}

/** Parse `7d`, `24h`, `30m`, an ISO date or epoch milliseconds into epoch milliseconds. */
export function parseSince(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined
  const rel = /^(\d+)([smhdw])$/.exec(value)
  const t = rel ? now - Number(rel[1]) * { s: 1e3, m: 6e4, h: 3.6e6, d: 8.64e7, w: 6.048e8 }[rel[2] as 's'] : /^\d+$/.test(value) ? Number(value) : Date.parse(value)
  // outside the range of a Date (±8.64e15 ms) a time cannot be printed or compared: not a time at all
  return Number.isFinite(t) && Math.abs(t) <= 8.64e15 ? t : undefined
}
