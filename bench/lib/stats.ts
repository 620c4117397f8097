/** Small statistics helpers for benchmark samples. */

/** The q-quantile (0..1) of `values` by nearest rank; NaN when empty. */
export function quantile(values: ArrayLike<number>, q: number): number {
  if (values.length === 0) return NaN
  const sorted = Float64Array.from(values).sort()
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
  return sorted[rank]!
}

export const median = (values: ArrayLike<number>): number => quantile(values, 0.5)

/** Least-squares slope of y over x (units of y per unit of x); 0 with fewer than two points. */
export function slope(xs: number[], ys: number[]): number {
  const n = Math.min(xs.length, ys.length)
  if (n < 2) return 0
  let sx = 0, sy = 0, sxx = 0, sxy = 0
  for (let i = 0; i < n; i++) {
    sx += xs[i]!
    sy += ys[i]!
    sxx += xs[i]! * xs[i]!
    sxy += xs[i]! * ys[i]!
  }
  const d = n * sxx - sx * sx
  return d === 0 ? 0 : (n * sxy - sx * sy) / d
}

export interface PairedComparison {
  baseMedian: number
  otherMedian: number
  /** Median of the per-round differences, other − base. */
  pairedMedian: number
  /** Rounds in which other was below base. */
  lower: number
  rounds: number
}

/**
 * Two series measured in the same rounds (interleaved A/B): their medians, the median of the per-round
 * differences (other − base, which cancels the drift common to a round) and in how many rounds other was lower.
 *
 * @example
 * pairedComparison([100, 120, 90], [95, 118, 91]) // { baseMedian: 100, otherMedian: 95, pairedMedian: -2, lower: 2, rounds: 3 }
 */
export function pairedComparison(base: number[], other: number[]): PairedComparison {
  const rounds = Math.min(base.length, other.length)
  const diffs: number[] = []
  let lower = 0
  for (let r = 0; r < rounds; r++) {
    diffs.push(other[r]! - base[r]!)
    if (other[r]! < base[r]!) lower++
  }
  return { baseMedian: median(base.slice(0, rounds)), otherMedian: median(other.slice(0, rounds)), pairedMedian: median(diffs), lower, rounds }
}
