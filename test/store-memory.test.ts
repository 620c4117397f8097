import { describe, expect, it } from 'vitest'
import type { LedgerEntry } from '../src/ledger/types.js'
import { createMemoryStore } from '../src/store/memory.js'

const entry = (id: string, team = 'a'): LedgerEntry => ({
  id, request_id: `r-${id}`, ts: 1000, team, key_id: 'abc', alias: 'gpt-4o-mini', model: 'openai/gpt-4o-mini', provider: 'openai',
  surface: 'chat', stream: false, status: 'ok', tokens: { input: 1, output: 1, cached_input: 0, cache_write: 0 }, estimated: false,
  cost_usd: 0.001, latency_ms: 1, attempt: 1
})

describe('memory store ledger (a ring of the newest entries)', () => {
  it('keeps the newest maxLedgerEntries in order across many wraps', async () => {
    const store = createMemoryStore({ maxLedgerEntries: 5 })
    await store.appendLedger([entry('0'), entry('1')])
    expect((await store.queryLedger({})).map((e) => e.id)).toEqual(['0', '1'])
    for (let i = 2; i < 23; i++) await store.appendLedger([entry(String(i), i % 2 ? 'b' : 'a')])
    expect((await store.queryLedger({})).map((e) => e.id)).toEqual(['18', '19', '20', '21', '22'])
    expect((await store.queryLedger({ limit: 2 })).map((e) => e.id)).toEqual(['21', '22'])
    expect((await store.queryLedger({ team: 'b' })).map((e) => e.id)).toEqual(['19', '21'])
    // a batch larger than the ring keeps its own newest
    await store.appendLedger(Array.from({ length: 7 }, (_, i) => entry(`x${i}`)))
    expect((await store.queryLedger({})).map((e) => e.id)).toEqual(['x2', 'x3', 'x4', 'x5', 'x6'])
  })
})
