import type { LedgerEntry, LedgerFilter } from '../ledger/types.js'
import type { Store } from '../store/types.js'

export type ExportFormat = 'ndjson' | 'csv'

const MIN_SLICE = 60_000
const MAX_SLICE = 24 * 3_600_000
/** Slices that return more than this are halved next time, so one page stays small in memory. */
const TARGET_PER_SLICE = 2000

/**
 * Ledger entries of a time range, oldest first, read in time slices so a large export is never held whole
 * in memory: each slice is one `queryLedger` call with `since`/`until`; a slice that was empty doubles the
 * next one, a crowded one halves it.
 *
 * @example
 * for await (const page of ledgerPages(store, { team: 'a' }, since, until)) for (const e of page) write(e)
 */
export async function* ledgerPages(store: Store, filter: LedgerFilter, since: number, until: number, opts: { sliceMs?: number } = {}): AsyncGenerator<LedgerEntry[]> {
  let slice = opts.sliceMs ?? 3_600_000
  let from = since
  while (from <= until) {
    const to = Math.min(until, from + slice - 1)
    const page = await store.queryLedger({ ...filter, since: from, until: to, limit: undefined })
    if (page.length > 0) yield page.sort((a, b) => a.ts - b.ts)
    if (page.length === 0) slice = Math.min(MAX_SLICE, slice * 2)
    else if (page.length > TARGET_PER_SLICE) slice = Math.max(MIN_SLICE, Math.floor(slice / 2))
    from = to + 1
  }
}

export const CSV_COLUMNS = [
  'time', 'id', 'request_id', 'team', 'key_id', 'user', 'session', 'agent', 'tags', 'alias', 'model', 'provider', 'surface', 'stream',
  'status', 'http_status', 'input_tokens', 'output_tokens', 'cached_input_tokens', 'cache_write_tokens', 'estimated', 'cost_usd',
  'saved_usd', 'cache', 'latency_ms', 'ttft_ms', 'attempt', 'reason', 'error'
] as const

/** The CSV header line. */
export function csvHeader(): string {
  return CSV_COLUMNS.join(',') + '\r\n'
}

/**
 * One ledger entry as a CSV line (RFC 4180). Text cells that a spreadsheet would run as a formula
 * (`=`, `+`, `-`, `@`, tab, CR at the start) are prefixed with `'`: users and sessions come from clients.
 *
 * @example
 * csvLine(entry) // '2025-01-01T00:00:00.000Z,…,0.00042,…\r\n'
 */
export function csvLine(e: LedgerEntry): string {
  const cells: (string | number | boolean | undefined)[] = [
    new Date(e.ts).toISOString(), e.id, e.request_id, e.team, e.key_id, e.user, e.session, e.agent, e.tags?.join(';'), e.alias, e.model,
    e.provider, e.surface, e.stream, e.status, e.http_status, e.tokens.input, e.tokens.output, e.tokens.cached_input, e.tokens.cache_write,
    e.estimated, e.cost_usd, e.saved_usd, e.cache, e.latency_ms, e.ttft_ms, e.attempt, e.reason, e.error
  ]
  return cells.map(csvCell).join(',') + '\r\n'
}

function csvCell(v: string | number | boolean | undefined): string {
  if (v === undefined) return ''
  if (typeof v !== 'string') return String(v)
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe
}
