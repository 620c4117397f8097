/**
 * LSH buckets of one table in typed arrays: an open-addressing map from bucket key to the bucket's first
 * slot (linear probing, backward-shift deletion), and the bucket's slots chained through next / previous
 * links in an array that the caller owns and lays out (see `SlotLinks`). No object per bucket or per entry: a
 * lookup touches a few contiguous words instead of a JS Map's entry, an array header and its elements.
 */
export interface BucketTable {
  /** First slot of the bucket `key`, or -1 when it is empty. */
  head(key: number): number
  /** Puts `slot` first in the bucket `key`. */
  add(key: number, slot: number, links: SlotLinks): void
  /** Takes `slot` out of the bucket `key` (it must be there). */
  remove(key: number, slot: number, links: SlotLinks): void
}

/**
 * The chains, in arrays the caller lays out: a slot's next and previous slot in this table (-1 = none). Searches
 * walk only the next links, so the caller may keep them apart from the previous ones (a smaller record to read).
 */
export interface SlotLinks {
  chains: Int32Array
  /** Index in `chains` of the slot after `slot` in its bucket. */
  nextAt(slot: number): number
  previous: Int32Array
  /** Index in `previous` of the slot before `slot` in its bucket. */
  prevAt(slot: number): number
}

/**
 * @example
 * const table = createBucketTable()
 * table.add(0x2a, 7, links); table.head(0x2a) // 7
 */
export function createBucketTable(): BucketTable {
  let mask = 7
  let shift = 29
  let keys = new Uint32Array(8)
  let heads = new Int32Array(8).fill(-1)
  let used = 0

  // Fibonacci hashing: LSH keys are sign bits, so their low bits alone would cluster.
  const home = (key: number): number => Math.imul(key, 0x9e3779b1) >>> shift

  function find(key: number): number {
    let i = home(key)
    while (heads[i] !== -1) {
      if (keys[i] === key) return i
      i = (i + 1) & mask
    }
    return ~i
  }

  function grow(): void {
    const oldKeys = keys
    const oldHeads = heads
    keys = new Uint32Array(oldKeys.length * 2)
    heads = new Int32Array(oldKeys.length * 2).fill(-1)
    mask = keys.length - 1
    shift--
    for (let j = 0; j < oldKeys.length; j++) {
      if (oldHeads[j] === -1) continue
      const i = ~find(oldKeys[j]!)
      keys[i] = oldKeys[j]!
      heads[i] = oldHeads[j]!
    }
  }

  /** Empties position i and shifts back the entries of its probe run that can move closer to home. */
  function vacate(i: number): void {
    let j = i
    for (;;) {
      j = (j + 1) & mask
      if (heads[j] === -1) break
      const k = home(keys[j]!)
      // Move j into the hole unless its home lies cyclically in (i, j].
      if (i <= j ? k <= i || k > j : k <= i && k > j) {
        keys[i] = keys[j]!
        heads[i] = heads[j]!
        i = j
      }
    }
    heads[i] = -1
    used--
  }

  return {
    head(key) {
      const i = find(key)
      return i < 0 ? -1 : heads[i]!
    },
    add(key, slot, links) {
      let i = find(key)
      const chain = links.chains
      const prev = links.previous
      prev[links.prevAt(slot)] = -1
      if (i >= 0) {
        const first = heads[i]!
        chain[links.nextAt(slot)] = first
        prev[links.prevAt(first)] = slot
        heads[i] = slot
        return
      }
      if ((used + 1) * 2 > keys.length) {
        grow()
        i = find(key)
      }
      i = ~i
      keys[i] = key
      heads[i] = slot
      chain[links.nextAt(slot)] = -1
      used++
    },
    remove(key, slot, links) {
      const chain = links.chains
      const prev = links.previous
      const before = prev[links.prevAt(slot)]!
      const after = chain[links.nextAt(slot)]!
      if (after !== -1) prev[links.prevAt(after)] = before
      if (before !== -1) {
        chain[links.nextAt(before)] = after
        return
      }
      const i = find(key)
      if (i < 0) return
      if (after === -1) vacate(i)
      else heads[i] = after
    }
  }
}
