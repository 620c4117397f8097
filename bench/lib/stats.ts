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

/**
 * The order in which an interleaved A/B loads its variants in round `round`: in turn, reversed every other round,
 * so neither goes first every time.
 *
 * @example
 * roundOrder(3, 1) // [2, 1, 0]
 */
export function roundOrder(count: number, round: number): number[] {
  return Array.from({ length: count }, (_, i) => (round % 2 === 0 ? i : count - 1 - i))
}

/**
 * A paired comparison as the A/B scripts print it.
 *
 * @example
 * describePaired(pairedComparison([100, 120, 90], [95, 118, 91]), 'base') // 'paired -2.0 µs against base, lower in 2 of 3'
 */
export function describePaired(c: PairedComparison, baseName: string, unit = 'µs', digits = 1): string {
  return `paired ${c.pairedMedian >= 0 ? '+' : ''}${c.pairedMedian.toFixed(digits)} ${unit} against ${baseName}, lower in ${c.lower} of ${c.rounds}`
}

/**
 * The median of the per-round ratios other / base (two series measured in the same rounds): how many times the
 * base's CPU or throughput a variant had, with the drift common to a round cancelled.
 *
 * @example
 * pairedRatio([100, 200, 150], [300, 500, 300]) // 2.5 (ratios 3, 2.5, 2)
 */
export function pairedRatio(base: number[], other: number[]): number {
  const rounds = Math.min(base.length, other.length)
  const ratios: number[] = []
  for (let r = 0; r < rounds; r++) ratios.push(other[r]! / base[r]!)
  return median(ratios)
}
