import v8 from 'node:v8'
import vm from 'node:vm'
import { describe, expect, it } from 'vitest'
import { createSemanticCache } from '../src/cache/semantic.js'
import { newId } from '../src/ids.js'
import { ledgerEntryFor, ledgerModel } from '../src/ledger/entry.js'
import { createBuiltinEmbedder, embedText } from '../src/vector/embedders.js'
import type { VectorIndex } from '../src/vector/types.js'
import { chatContext } from './helpers/context.js'

// Ids a full gateway keeps by the ten thousand (the ledger ring, the semantic index) must be flat strings: a UUID
// kept as the tree of pieces Node adds it up from costs ~480 bytes of heap, not ~60.
v8.setFlagsFromString('--expose-gc')
const gc = vm.runInNewContext('gc') as () => void

function heapUsed(): number {
  gc()
  gc()
  return process.memoryUsage().heapUsed
}

/** Heap bytes each of `n` strings from `make` keeps alive (the array holding them counted in). */
async function retainedPerString(make: () => string | Promise<string>, n = 20_000, unique = true): Promise<number> {
  const kept: string[] = new Array(n).fill('')
  const before = heapUsed()
  for (let i = 0; i < n; i++) kept[i] = await make()
  const per = (heapUsed() - before) / n
  // counted outside the window: an assertion's arguments can stay referenced until a later one
  if (unique && new Set(kept).size !== n) throw new Error('ids repeated')
  return per
}

describe('ids that are kept are flat strings', () => {
  it('newId: a UUID v4 that keeps ~60 bytes of heap, not ~480', async () => {
    expect(newId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(await retainedPerString(newId)).toBeLessThan(150)
  })

  it('ledger entry ids and semantic-cache entry ids are flat', async () => {
    const ctx = chatContext({ request: { model: 'm', messages: [{ role: 'user', content: 'hi' }] } })
    const entry = () =>
      ledgerEntryFor(ctx, { model: 'p/m', provider: 'p', stream: false, status: 'ok', tokens: { input: 1, output: 1, cached_input: 0, cache_write: 0 }, estimated: false, cost_usd: 0, latency_ms: 1, attempt: 1 }).id
    expect(await retainedPerString(entry)).toBeLessThan(150)

    // the semantic cache's entry ids (kept by the index and in the entry's store key), from an index that keeps
    // nothing, so the ids are all that stays
    const semantic = createSemanticCache({ embedder: createBuiltinEmbedder(), index: { upsert: async () => {} } as unknown as VectorIndex })
    const vector = embedText('how do I reset my password', 256)
    const query = { scope: 's', text: 'how do I reset my password' }
    expect(await retainedPerString(() => semantic.remember(query, vector, Date.now() + 60_000))).toBeLessThan(150)
  })

  it("a ledger entry's model name is one string per target, not a new one per entry", async () => {
    const target = { provider: { name: 'openai' }, model: { model: 'gpt-4o-mini' } }
    expect(ledgerModel(target)).toBe('openai/gpt-4o-mini')
    // the same string every time keeps nothing new (measured 0–1 bytes); a new `provider/model` per entry kept
    // about 56 bytes (27 flattened)
    expect(await retainedPerString(() => ledgerModel(target), 20_000, false)).toBeLessThan(24)
  })
})
