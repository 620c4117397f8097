/**
 * A seeded pseudo-random source (mulberry32): the same seed gives the same sequence, for what must come out the
 * same on every run (the semantic index's hyperplanes, property tests, generated test models, bench resampling).
 * Not for anything secret.
 *
 * @example
 * const rand = seededRandom(7)
 * rand() // a number in [0, 1)
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
