import { describe, expect, it } from 'vitest'
import { pairedComparison } from '../bench/lib/stats.js'

describe('pairedComparison (bench/ab.ts)', () => {
  it('takes the median of per-round differences, not the difference of medians', () => {
    // the rounds drift (100 → 300) and the other build is 10 lower in every one of them
    const base = [100, 300, 200, 250, 150]
    const other = [90, 290, 190, 240, 140]
    expect(pairedComparison(base, other)).toEqual({ baseMedian: 200, otherMedian: 190, pairedMedian: -10, lower: 5, rounds: 5 })
  })

  it('counts the rounds where the other was lower, over the rounds both have', () => {
    const c = pairedComparison([100, 100, 100, 100], [101, 99, 100])
    expect(c.rounds).toBe(3)
    expect(c.lower).toBe(1)
    expect(c.pairedMedian).toBe(0)
  })
})
