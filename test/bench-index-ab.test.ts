import { describe, expect, it } from 'vitest'
import { describeIndexAb, indexAb } from '../bench/index-ab.js'

describe('bench/index-ab.ts', () => {
  it('times searches and inserts per round for each variant, on an index it fills with the bench prompts', async () => {
    // src/ through tsx: the folder of the repo root holds src/vector/memory.ts, which tsx imports as .js
    const results = await indexAb({ variants: ['.', '.'], entries: 2_000, rounds: 3, searches: 40, insert: true, coldMb: 0 })
    expect(results).toHaveLength(2)
    for (const r of results) {
      expect(r.search).toHaveLength(3)
      expect(r.insert).toHaveLength(3)
      for (const v of [...r.search, ...r.insert]) expect(v).toBeGreaterThan(0)
    }
    const lines = describeIndexAb(results)
    expect(lines).toHaveLength(4)
    expect(lines[1]).toMatch(/search median [\d.]+ µs; paired [+-][\d.]+ µs against \., lower in \d of 3/)
    expect(lines[3]).toMatch(/^\.: insert median/)
  }, 60_000)
})
