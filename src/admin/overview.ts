import type { Price } from '../config/schema.js'
import type { LedgerEntry } from '../ledger/types.js'

export interface OverviewOptions {
  since: number
  until: number
  /** Price of the target an entry called, for what provider prompt caching saved; undefined = not counted. */
  priceOf?: (entry: LedgerEntry) => Price | undefined
  /** How many sessions to list. */
  topSessions?: number
}

const HOUR = 3_600_000
const DAY = 24 * HOUR

/**
 * Everything the dashboard shows, in one pass over the ledger entries of a time range: spend over time by
 * team and by model, top sessions by cost, cache hits and savings by layer, routing split and escalations,
 * outcomes. Buckets are hours for ranges up to three days, days beyond.
 *
 * @example
 * const o = summarizeOverview(entries, { since: Date.now() - 86_400_000, until: Date.now() })
 * o.cache.hit_rate // 0.25
 */
export function summarizeOverview(entries: LedgerEntry[], opts: OverviewOptions) {
  const bucketMs = opts.until - opts.since <= 3 * DAY ? HOUR : DAY
  const first = Math.floor(opts.since / bucketMs) * bucketMs
  const nBuckets = Math.max(1, Math.floor((opts.until - first) / bucketMs) + 1)
  const buckets = Array.from({ length: nBuckets }, (_, i) => new Date(first + i * bucketMs).toISOString())
  const byTeam = new Map<string, number[]>()
  const byModel = new Map<string, number[]>()
  const addSeries = (m: Map<string, number[]>, key: string, i: number, usd: number) => {
    let s = m.get(key)
    if (!s) m.set(key, (s = new Array<number>(nBuckets).fill(0)))
    s[i] = s[i]! + usd
  }

  const sessions = new Map<string, { session: string; team: string; cost_usd: number; requests: Set<string>; last: number }>()
  const requests = new Map<string, LedgerEntry[]>()
  const status: Record<string, number> = {}
  const layers = { exact: { hits: 0, saved_usd: 0 }, semantic: { hits: 0, saved_usd: 0 }, provider: { cached_tokens: 0, saved_usd: 0 } }
  let cost = 0

  for (const e of entries) {
    cost += e.cost_usd
    status[e.status] = (status[e.status] ?? 0) + 1
    const i = Math.min(nBuckets - 1, Math.max(0, Math.floor((e.ts - first) / bucketMs)))
    if (e.cost_usd > 0) {
      addSeries(byTeam, e.team, i, e.cost_usd)
      addSeries(byModel, e.model, i, e.cost_usd)
    }
    let group = requests.get(e.request_id)
    if (!group) requests.set(e.request_id, (group = []))
    group.push(e)
    if (e.session) {
      const k = `${e.team}\u0000${e.session}`
      let s = sessions.get(k)
      if (!s) sessions.set(k, (s = { session: e.session, team: e.team, cost_usd: 0, requests: new Set(), last: 0 }))
      s.cost_usd += e.cost_usd
      s.requests.add(e.request_id)
      s.last = Math.max(s.last, e.ts)
    }
    if (e.status === 'cache_hit') {
      const layer = e.cache === 'semantic-hit' ? layers.semantic : layers.exact
      layer.hits++
      layer.saved_usd += e.saved_usd ?? 0
    } else if (e.tokens.cached_input > 0) {
      const price = opts.priceOf?.(e)
      layers.provider.cached_tokens += e.tokens.cached_input
      if (price) layers.provider.saved_usd += (e.tokens.cached_input * Math.max(0, price.input - (price.cached_input ?? price.input))) / 1e6
    }
  }

  // routing: what answered each request, and how it got there
  const split = new Map<string, number>()
  let escalated = 0
  let fellBack = 0
  let multiAttempt = 0
  let cacheHits = 0
  for (const group of requests.values()) {
    if (group.some((e) => e.status === 'cache_hit')) {
      cacheHits++
      continue
    }
    group.sort((a, b) => a.attempt - b.attempt)
    const answered = [...group].reverse().find((e) => e.status === 'ok') ?? group[group.length - 1]!
    split.set(answered.model, (split.get(answered.model) ?? 0) + 1)
    if (group.length > 1) multiAttempt++
    const tiers = new Set(group.map((e) => /cascade tier (\d+)/.exec(e.reason ?? '')?.[1]).filter(Boolean))
    if (tiers.size > 1) escalated++
    if (group.some((e) => /fallback/.test(e.reason ?? ''))) fellBack++
  }

  const round = (n: number) => Math.round(n * 1e9) / 1e9
  const series = (m: Map<string, number[]>) =>
    [...m.entries()]
      .map(([key, values]) => ({ key, total_usd: round(values.reduce((a, b) => a + b, 0)), values: values.map(round) }))
      .sort((a, b) => b.total_usd - a.total_usd)
  const saved = layers.exact.saved_usd + layers.semantic.saved_usd + layers.provider.saved_usd

  return {
    since: new Date(opts.since).toISOString(),
    until: new Date(opts.until).toISOString(),
    bucket: bucketMs === HOUR ? 'hour' : 'day',
    totals: { requests: requests.size, attempts: entries.length, cost_usd: round(cost), saved_usd: round(saved), status },
    spend: { buckets, by_team: series(byTeam), by_model: series(byModel) },
    top_sessions: [...sessions.values()]
      .sort((a, b) => b.cost_usd - a.cost_usd)
      .slice(0, opts.topSessions ?? 10)
      .map((s) => ({ session: s.session, team: s.team, cost_usd: round(s.cost_usd), requests: s.requests.size, last: new Date(s.last).toISOString() })),
    cache: {
      requests: requests.size,
      hits: cacheHits,
      hit_rate: requests.size ? round(cacheHits / requests.size) : 0,
      layers: [
        { layer: 'exact', hits: layers.exact.hits, saved_usd: round(layers.exact.saved_usd) },
        { layer: 'semantic', hits: layers.semantic.hits, saved_usd: round(layers.semantic.saved_usd) },
        { layer: 'provider prompt cache', cached_tokens: layers.provider.cached_tokens, saved_usd: round(layers.provider.saved_usd) }
      ]
    },
    routing: {
      split: [...split.entries()].map(([model, n]) => ({ model, requests: n })).sort((a, b) => b.requests - a.requests),
      escalated,
      fell_back: fellBack,
      multi_attempt: multiAttempt
    }
  }
}
