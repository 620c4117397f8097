import { describe, expect, it } from 'vitest'
import { describePaired, pairedComparison, pairedRatio, roundOrder } from '../bench/lib/stats.js'

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

describe('roundOrder and describePaired (bench/ab.ts, bench/index-ab.ts)', () => {
  it('loads the variants in turn, reversed every other round', () => {
    expect(roundOrder(3, 0)).toEqual([0, 1, 2])
    expect(roundOrder(3, 1)).toEqual([2, 1, 0])
    expect(roundOrder(2, 4)).toEqual([0, 1])
  })

  it('prints the paired median with its sign, the base and the rounds lower', () => {
    expect(describePaired(pairedComparison([100, 120, 90], [95, 118, 91]), 'base')).toBe('paired -2.0 µs against base, lower in 2 of 3')
    expect(describePaired(pairedComparison([100, 100, 100], [103, 101, 102]), 'dist')).toBe('paired +2.0 µs against dist, lower in 0 of 3')
  })
})

describe('pairedRatio (bench/ab.ts, ratios to the floor)', () => {
  it('takes the median of per-round ratios, so a round that ran slow for everyone does not skew it', () => {
    // the other costs 3×, 2.5× and 2× the base in its rounds; the ratio of medians would be 300 / 150 = 2
    expect(pairedRatio([100, 200, 150], [300, 500, 300])).toBe(2.5)
    expect(pairedRatio([100, 100], [150, 150, 999])).toBe(1.5)
  })
})
