import type { LedgerEntry } from '../../src/ledger/types.js'

/**
 * A minimal ledger entry of team `a` for store tests: one chat call costing $0.001.
 *
 * @example
 * await store.appendLedger([ledgerEntry('e1', Date.now())])
 */
export function ledgerEntry(id: string, ts: number): LedgerEntry {
  return {
    id, request_id: `r-${id}`, ts, team: 'a', key_id: 'abc', alias: 'gpt-4o-mini', model: 'openai/gpt-4o-mini', provider: 'openai',
    surface: 'chat', stream: false, status: 'ok', tokens: { input: 1, output: 1, cached_input: 0, cache_write: 0 }, estimated: false,
    cost_usd: 0.001, latency_ms: 1, attempt: 1
  }
}
