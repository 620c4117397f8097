import type { LedgerEntry, LedgerFilter } from './types.js'

/** Whether a ledger entry matches every field set in the filter. */
export function matchesLedgerFilter(e: LedgerEntry, f: LedgerFilter): boolean {
  return (
    (f.team === undefined || e.team === f.team) &&
    (f.key_id === undefined || e.key_id === f.key_id) &&
    (f.user === undefined || e.user === f.user) &&
    (f.session === undefined || e.session === f.session) &&
    (f.agent === undefined || e.agent === f.agent) &&
    (f.model === undefined || e.model === f.model) &&
    (f.alias === undefined || e.alias === f.alias) &&
    (f.tag === undefined || (e.tags?.includes(f.tag) ?? false)) &&
    (f.since === undefined || e.ts >= f.since) &&
    (f.until === undefined || e.ts <= f.until)
  )
}
