import { seededRandom } from '../random.js'
import { createBucketTable, type BucketTable, type SlotLinks } from './buckets.js'
import type { VectorEntry, VectorIndex, VectorMatch, VectorSearch } from './types.js'

export interface MemoryIndexOptions {
  /** Length of the vectors (the embedder's). */
  dimensions: number
  /** Entries held; the oldest are evicted beyond this. */
  maxEntries?: number
  /** A scope with at most this many entries is scanned whole (exact); larger ones go through LSH buckets. */
  exactScanLimit?: number
  /** LSH tables and bits per table (sign random projections). */
  tables?: number
  bits?: number
  /**
   * Buckets probed per table besides the query's own: the bit flips most likely to hold a near neighbour,
   * those whose hyperplanes pass closest to the query (query-directed multi-probe LSH).
   */
  probes?: number
  /** Share of dimensions each hyperplane draws on (sparse projections: hashing costs this share of a dense one). */
  planeDensity?: number
  /** Seed of the random hyperplanes, so two runs index the same way. */
  seed?: number
}

interface Partition {
  /** The scope's name, one string shared by all its slots (each upsert brings its own copy). */
  scope: string
  /** How many slots the partition holds: `members[0..count)`. */
  count: number
  /** The partition's slots, in no order (a removal moves the last one into the gap). */
  members: Int32Array<ArrayBuffer>
  /**
   * Each member's LSH keys (`words` per member, as in `sigs`), side by side: a whole-scope scan reads one
   * contiguous run instead of each slot's keys, scattered over the index among other scopes' entries.
   */
  keys: Int32Array<ArrayBuffer>
  /** One bucket table per LSH table, built for every entry so a scope can outgrow the exact scan. */
  buckets: BucketTable[]
}

/**
 * A scope this small is scored whole without the key prefilter. Projecting the query for its keys costs about
 * what scoring 150–300 entries does (10–20 µs); a miss's insert would project it anyway, a hit does not.
 */
const PREFILTER_FROM = 256

/**
 * The embedded default `VectorIndex`: everything in this process, bounded by entry count.
 *
 * Vectors are stored as int8 with one scale per vector (a quarter of the memory of float32; cosine error
 * under 0.005). Each scope is its own partition: small scopes are scanned whole, large ones are searched
 * through locality-sensitive hashing (random hyperplanes); either way the candidates are scored exactly, so
 * lookups stay well under a millisecond at 100k entries. LSH may miss a neighbour near the threshold; it never
 * returns one below it.
 *
 * @example
 * const index = createMemoryIndex({ dimensions: 256, maxEntries: 100_000 })
 * await index.upsert({ id, vector, scope: 'team:a', text: 'how do I enable 2FA', expiresAt: Date.now() + 3600_000 })
 * const [best] = await index.search(vector, { scope: 'team:a', minScore: 0.9, limit: 1, now: Date.now() })
 */
export function createMemoryIndex(opts: MemoryIndexOptions): VectorIndex {
  const dims = opts.dimensions
  const maxEntries = opts.maxEntries ?? 100_000
  const exactScanLimit = opts.exactScanLimit ?? 1024
  const tables = opts.tables ?? 16
  const bits = opts.bits ?? 18
  if (bits > 30) throw new Error('bits per LSH table must be at most 30')
  const width = tables * bits
  const planes = sparsePlanes(width, dims, opts.planeDensity ?? 0.125, opts.seed ?? 0x5eed)
  const probeMasks = probeTemplate(Math.min(bits, 8), opts.probes ?? 8)
  /** Scratch for project: one dot product per hyperplane. */
  const dots = new Float64Array(width)
  /** Scratch for probing: |dots|, how close the query lies to each hyperplane (up to the plane's norm). */
  const margins = new Float64Array(width)
  /** The probes flip only a table's `ranked` closest hyperplanes: only those need ordering. */
  const ranked = 32 - Math.clz32(probeMasks.reduce((all, m) => all | m, 0))
  /** Scratch for probing: a table's `ranked` bits closest to the query, closest first. */
  const order = new Int32Array(Math.max(ranked, 1))
  /**
   * Scratch for probing, one cursor per bucket probed: first its table and key, then the table's link field and
   * the chain's current slot (see forEachCandidate).
   */
  const cursorA = new Int32Array(tables * (probeMasks.length + 1))
  const cursorB = new Int32Array(tables * (probeMasks.length + 1))
  /** Keys already computed for a vector: a lookup that misses hashes the vector it then stores. */
  const hashed = new WeakMap<Float32Array, Uint32Array>()

  // Slot-addressed storage: parallel arrays, reused through a free list.
  const ids: string[] = []
  const scopes: string[] = []
  const texts: string[] = []
  const expires: number[] = []
  /** Quantised vectors, slot-major in one slab (no object per entry; neighbours in memory while scoring). */
  let slab = new Int8Array(dims * 1024)
  /** Search generation per slot: a slot found through several LSH buckets is scored once, without a Set. */
  let seenAt = new Uint32Array(1024)
  /** Each slot's position in its partition's `members`. */
  let memberAt = new Int32Array(1024)
  let generation = 0
  const scales: number[] = []
  /**
   * Each slot's LSH keys as one bit string of `width` bits (table t's key at bits t × bits..) in `words` words:
   * the packed keys take a third fewer popcounts than one word per table.
   */
  const words = Math.ceil(width / 32)
  let sigs = new Int32Array(words * 1024)
  /**
   * Each slot's next link in each table's bucket chain, `tables` per slot, apart from its keys: a search first
   * walks the chains reading only these (one word per step), then reads the keys of the slots it
   * gathered, none of which waits on another, so the CPU overlaps those reads (see forEachCandidate).
   */
  let nexts = new Int32Array(tables * 1024)
  /** Each slot's previous link in each table's bucket chain, `tables` per slot (used only to take an entry out). */
  let previous = new Int32Array(tables * 1024)
  /** Each slot's links in the eviction order: older at 2 × slot, newer at 2 × slot + 1. */
  let ages = new Int32Array(2 * 1024)
  /** Scratch for search: the query's keys packed like a slot's. */
  const querySig = new Int32Array(words)
  /** One view of the chains per table, for its BucketTable. */
  const links: SlotLinks[] = Array.from({ length: tables }, (_, t) => ({
    chains: nexts,
    nextAt: (slot: number) => slot * tables + t,
    previous,
    prevAt: (slot: number) => slot * tables + t
  }))
  const free: number[] = []
  const byId = new Map<string, number>()
  /**
   * Ends of the eviction order (insertion order), a list through each slot's `ages`: finding
   * the oldest entry through the Map's iterator skipped the holes its deletions leave at the front, up to
   * half its capacity on every eviction.
   */
  let oldest = -1
  let newest = -1
  const partitions = new Map<string, Partition>()

  /**
   * Projects a vector on every hyperplane into `dots` and returns its LSH key in each table. Planes are
   * sparse and stored by dimension, so the loop walks each non-zero component once and adds it into the
   * few hyperplanes that draw on it (the builtin embedder's vectors are half zeros).
   */
  function project(vector: Float32Array): Uint32Array {
    dots.fill(0)
    const { start, plane, weight } = planes
    for (let d = 0; d < dims; d++) {
      const x = vector[d]!
      if (x === 0) continue
      for (let k = start[d]!, end = start[d + 1]!; k < end; k++) dots[plane[k]!]! += x * weight[k]!
    }
    const out = new Uint32Array(tables)
    for (let t = 0; t < tables; t++) {
      let key = 0
      for (let b = 0; b < bits; b++) if (dots[t * bits + b]! >= 0) key |= 1 << b
      out[t] = key >>> 0
    }
    hashed.set(vector, out)
    return out
  }

  /** Writes the keys of every table into `out` at `at`, `bits` each, back to back (see `sigs`). */
  function pack(keys: Uint32Array, out: Int32Array, at: number): void {
    out.fill(0, at, at + words)
    for (let t = 0; t < tables; t++) {
      const bit = t * bits
      const w = at + (bit >>> 5)
      const off = bit & 31
      out[w] = out[w]! | (keys[t]! << off)
      if (off + bits > 32) out[w + 1] = out[w + 1]! | (keys[t]! >>> (32 - off))
    }
  }

  /** Table t's key in the bit string at `at` of `sig`. */
  function keyOf(sig: Int32Array, at: number, t: number): number {
    const bit = t * bits
    const w = at + (bit >>> 5)
    const off = bit & 31
    let key = sig[w]! >>> off
    if (off + bits > 32) key |= sig[w + 1]! << (32 - off)
    return (key & ((1 << bits) - 1)) >>> 0 // bits ≤ 30
  }

  function hashKeys(vector: Float32Array): Uint32Array {
    return hashed.get(vector) ?? project(vector)
  }

  /** Adds `slot` (its keys already in `sigs`) to the partition's members. */
  function join(part: Partition, slot: number): void {
    if (part.count === part.members.length) {
      part.members = extended(part.members, part.count * 2)
      part.keys = extended(part.keys, part.count * 2 * words)
    }
    const i = part.count++
    part.members[i] = slot
    for (let u = 0; u < words; u++) part.keys[i * words + u] = sigs[slot * words + u]!
    memberAt[slot] = i
  }

  /** Takes `slot` out of the partition's members, moving the last member into its place. */
  function leave(part: Partition, slot: number): void {
    const i = memberAt[slot]!
    const last = --part.count
    if (i === last) return
    const moved = part.members[last]!
    part.members[i] = moved
    part.keys.copyWithin(i * words, last * words, (last + 1) * words)
    memberAt[moved] = i
  }

  function remove(slot: number): void {
    const scope = scopes[slot]!
    const part = partitions.get(scope)
    if (part) {
      leave(part, slot)
      for (let t = 0; t < tables; t++) part.buckets[t]!.remove(keyOf(sigs, slot * words, t), slot, links[t]!)
      if (part.count === 0) partitions.delete(scope)
    }
    byId.delete(ids[slot]!)
    const older = ages[2 * slot]!
    const newer = ages[2 * slot + 1]!
    if (older === -1) oldest = newer
    else ages[2 * older + 1] = newer
    if (newer === -1) newest = older
    else ages[2 * newer] = older
    texts[slot] = ''
    free.push(slot)
  }

  /** The query's non-zero components (index, value), filled by `nonZeros` for the search under way. */
  const nzIndex = new Int32Array(dims)
  const nzValue = new Float64Array(dims)
  let nz = 0

  /**
   * Keeps the query's non-zero components (the builtin embedder's vectors are mostly zeros): scoring skips
   * the zero terms, which add ±0 to the dot product and so leave it the same bit for bit.
   */
  function nonZeros(query: Float32Array): void {
    nz = 0
    for (let d = 0; d < dims; d++) {
      const x = query[d]!
      if (x === 0) continue
      nzIndex[nz] = d
      nzValue[nz++] = x
    }
  }

  /** Scratch for search: the unexpired candidates of the search under way, in visiting order, and their scores. */
  let live = new Int32Array(1024)
  /** Scratch for search: the slots found in the probed buckets, each once, before their keys are read. */
  let gathered = new Int32Array(1024)
  let scores = new Float64Array(1024)

  /**
   * Scores `live[0..n)` into `scores`, eight entries at a time: each dot product still adds its terms one
   * by one in the same order (the same result bit for bit), but eight independent sums keep the
   * floating-point adders busy where one sum waits on each add in turn (an exact scan takes half the time).
   */
  function scoreLive(n: number): void {
    if (scores.length < n) scores = new Float64Array(live.length)
    const v = slab
    let c = 0
    for (; c + 8 <= n; c += 8) {
      const b0 = live[c]! * dims
      const b1 = live[c + 1]! * dims
      const b2 = live[c + 2]! * dims
      const b3 = live[c + 3]! * dims
      const b4 = live[c + 4]! * dims
      const b5 = live[c + 5]! * dims
      const b6 = live[c + 6]! * dims
      const b7 = live[c + 7]! * dims
      let d0 = 0
      let d1 = 0
      let d2 = 0
      let d3 = 0
      let d4 = 0
      let d5 = 0
      let d6 = 0
      let d7 = 0
      for (let k = 0; k < nz; k++) {
        const x = nzValue[k]!
        const i = nzIndex[k]!
        d0 += x * v[b0 + i]!
        d1 += x * v[b1 + i]!
        d2 += x * v[b2 + i]!
        d3 += x * v[b3 + i]!
        d4 += x * v[b4 + i]!
        d5 += x * v[b5 + i]!
        d6 += x * v[b6 + i]!
        d7 += x * v[b7 + i]!
      }
      scores[c] = d0 * scales[live[c]!]!
      scores[c + 1] = d1 * scales[live[c + 1]!]!
      scores[c + 2] = d2 * scales[live[c + 2]!]!
      scores[c + 3] = d3 * scales[live[c + 3]!]!
      scores[c + 4] = d4 * scales[live[c + 4]!]!
      scores[c + 5] = d5 * scales[live[c + 5]!]!
      scores[c + 6] = d6 * scales[live[c + 6]!]!
      scores[c + 7] = d7 * scales[live[c + 7]!]!
    }
    for (; c < n; c++) {
      const base = live[c]! * dims
      let dot = 0
      for (let k = 0; k < nz; k++) dot += nzValue[k]! * v[base + nzIndex[k]!]!
      scores[c] = dot * scales[live[c]!]!
    }
  }

  /**
   * Calls visit once per candidate slot: the whole scope when small, else the LSH buckets near the query. Either
   * way a slot whose keys put it far beyond the threshold's angle is skipped (unless expired, so the search still
   * takes it out) before anything reads its vector.
   *
   * The buckets are found and walked in rounds, not one after the other: first every probed bucket's key, then
   * every bucket's head, then one step along every chain per round, reading only the next links; then the keys
   * of every slot gathered. A busy scope's tables, links and keys do not stay in the CPU caches, so each read is
   * a wait on memory; reads that do not depend on each other let those waits overlap (the same walk took a
   * quarter of the time when repeated at once, with everything cached). Reading the keys while walking, one
   * record per step, made every key read wait on the link before it: gathering first took a search on a crowded
   * 25k-entry scope from ~76 to ~61 µs in-process.
   */
  function forEachCandidate(part: Partition, query: Float32Array, minScore: number, now: number, visit: (slot: number) => void): void {
    const { count, members } = part
    const whole = count <= exactScanLimit
    if (whole && count < PREFILTER_FROM) {
      for (let i = 0; i < count; i++) visit(members[i]!)
      return
    }
    const maxDistance = hammingBound(minScore, width)
    if (whole) {
      // Scoring reads the slot's vector and multiplies every non-zero component; its keys are a few words and
      // popcounts, read in one run. The query's keys are kept for the insert that follows a miss (hashKeys).
      pack(hashKeys(query), querySig, 0)
      const keys = part.keys
      for (let i = 0, at = 0; i < count; i++, at += words) {
        let distance = 0
        for (let u = 0; u < words; u++) distance += popcount(querySig[u]! ^ keys[at + u]!)
        const slot = members[i]!
        if (distance <= maxDistance || expires[slot]! <= now) visit(slot)
      }
      return
    }
    const qk = project(query) // not hashKeys: probing needs this query's projections in `dots`
    pack(qk, querySig, 0)
    if (++generation === 0xffffffff) {
      seenAt.fill(0)
      generation = 1
    }
    for (let j = 0; j < width; j++) margins[j] = Math.abs(dots[j]!)
    // Round 1: the key of every bucket to probe (cursorA: table, cursorB: key).
    let cursors = 0
    for (let t = 0; t < tables; t++) {
      // The table's `ranked` bits closest to the query's hyperplanes, closest first (a stable partial insertion
      // sort): a near neighbour differs from the query mostly on hyperplanes the query lies close to.
      const base = t * bits
      for (let b = 0, kept = 0; b < bits && ranked > 0; b++) {
        const m = margins[base + b]!
        if (kept === ranked && !(margins[base + order[kept - 1]!]! > m)) continue
        let i = kept < ranked ? kept++ : kept - 1
        while (i > 0 && margins[base + order[i - 1]!]! > m) {
          order[i] = order[i - 1]!
          i--
        }
        order[i] = b
      }
      for (let p = -1; p < probeMasks.length; p++) {
        let key = qk[t]!
        if (p >= 0) {
          // The template names ranks (bit r = the r-th closest hyperplane); map them to this table's bits.
          for (let ranks = probeMasks[p]!, r = 0; ranks !== 0; ranks >>>= 1, r++) if (ranks & 1) key ^= 1 << order[r]!
          key >>>= 0
        }
        cursorA[cursors] = t
        cursorB[cursors++] = key
      }
    }
    // Round 2: every bucket's first slot; empty buckets drop out (cursorA: the link field of the table, cursorB: slot).
    let walking = 0
    for (let c = 0; c < cursors; c++) {
      const t = cursorA[c]!
      const head = part.buckets[t]!.head(cursorB[c]!)
      if (head === -1) continue
      cursorA[walking] = t
      cursorB[walking++] = head
    }
    // Then one step along every chain per round, until all have ended, gathering each slot once.
    let n = 0
    let rounds = 0
    while (walking > 0) {
      // A chain holds at most the scope's entries: more rounds than that mean broken links that loop, and a walk
      // that never ends would stall every request of the gateway. Fail the lookup instead (the cache step logs
      // it and answers without the semantic layer).
      if (++rounds > count) throw new Error(`vector index: an LSH chain in scope ${part.scope} does not end (broken links)`)
      let kept = 0
      for (let c = 0; c < walking; c++) {
        const slot = cursorB[c]!
        const next = nexts[slot * tables + cursorA[c]!]!
        if (next !== -1) {
          cursorA[kept] = cursorA[c]!
          cursorB[kept++] = next
        }
        if (seenAt[slot] === generation) continue
        seenAt[slot] = generation
        if (n === gathered.length) gathered = grow(gathered)
        gathered[n++] = slot
      }
      walking = kept
    }
    // The entry's keys in every table estimate its angle to the query (a bit differs with probability angle / π):
    // skip the exact score of entries far beyond the threshold's angle.
    for (let i = 0; i < n; i++) {
      const slot = gathered[i]!
      const at = slot * words
      let distance = 0
      for (let u = 0; u < words; u++) distance += popcount(querySig[u]! ^ sigs[at + u]!)
      if (distance <= maxDistance) visit(slot)
    }
  }

  return {
    kind: 'memory',
    settings: `up to ${maxEntries} entries; scopes past ${exactScanLimit} through LSH: ${tables} tables × ${bits} bits, ${probeMasks.length} probes`,
    async init() {},

    async upsert(entry: VectorEntry) {
      if (entry.vector.length !== dims) {
        throw new Error(`vector has ${entry.vector.length} dimensions, the index ${dims}`)
      }
      const old = byId.get(entry.id)
      if (old !== undefined) remove(old)
      while (byId.size >= maxEntries) remove(oldest)
      const slot = free.length > 0 ? free.pop()! : ids.length
      if ((slot + 1) * dims > slab.length) {
        const grown = new Int8Array(Math.max(slab.length * 2, (slot + 1) * dims))
        grown.set(slab)
        slab = grown
        const capacity = grown.length / dims
        const seen = new Uint32Array(capacity)
        seen.set(seenAt)
        seenAt = seen
        memberAt = extended(memberAt, capacity)
        sigs = extended(sigs, capacity * words)
        nexts = extended(nexts, capacity * tables)
        ages = extended(ages, capacity * 2)
        previous = extended(previous, capacity * tables)
        for (const l of links) {
          l.chains = nexts
          l.previous = previous
        }
      }
      const scale = quantize(entry.vector, slab, slot * dims)
      ids[slot] = entry.id
      texts[slot] = entry.text
      expires[slot] = entry.expiresAt
      scales[slot] = scale
      const k = hashKeys(entry.vector)
      pack(k, sigs, slot * words)
      byId.set(entry.id, slot)
      ages[2 * slot] = newest
      ages[2 * slot + 1] = -1
      if (newest === -1) oldest = slot
      else ages[2 * newest + 1] = slot
      newest = slot
      let part = partitions.get(entry.scope)
      if (!part) {
        part = { scope: entry.scope, count: 0, members: new Int32Array(4), keys: new Int32Array(4 * words), buckets: Array.from({ length: tables }, () => createBucketTable()) }
        partitions.set(entry.scope, part)
      }
      scopes[slot] = part.scope
      join(part, slot)
      for (let t = 0; t < tables; t++) part.buckets[t]!.add(k[t]!, slot, links[t]!)
    },

    async search(vector: Float32Array, query: VectorSearch): Promise<VectorMatch[]> {
      const part = partitions.get(query.scope)
      if (!part || query.limit <= 0) return []
      const found: VectorMatch[] = []
      const expired: number[] = []
      nonZeros(vector)
      let n = 0
      forEachCandidate(part, vector, query.minScore, query.now, (slot) => {
        if (expires[slot]! <= query.now) {
          expired.push(slot)
          return
        }
        if (n === live.length) live = grow(live)
        live[n++] = slot
      })
      scoreLive(n)
      for (let c = 0; c < n; c++) {
        const s = scores[c]!
        if (s >= query.minScore) {
          const slot = live[c]!
          found.push({ id: ids[slot]!, score: Math.min(1, s), text: texts[slot]! })
        }
      }
      for (const slot of expired) remove(slot)
      found.sort((a, b) => b.score - a.score)
      return found.slice(0, query.limit)
    },

    async delete(id: string) {
      const slot = byId.get(id)
      if (slot !== undefined) remove(slot)
    },

    async size() {
      return byId.size
    },

    async close() {
      byId.clear()
      oldest = newest = -1
      partitions.clear()
    }
  }
}

/** A copy of `a`, `length` long (the rest zeros). */
function extended(a: Int32Array<ArrayBuffer>, length: number): Int32Array<ArrayBuffer> {
  const grown = new Int32Array(length)
  grown.set(a)
  return grown
}

/** A copy of `a` twice as long. */
function grow(a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> {
  return extended(a, a.length * 2)
}

/** Symmetric int8 quantisation with one scale per vector, written into `out` at `at`; returns the scale. */
function quantize(v: Float32Array, out: Int8Array, at: number): number {
  let max = 0
  for (let i = 0; i < v.length; i++) max = Math.max(max, Math.abs(v[i]!))
  if (max === 0) {
    out.fill(0, at, at + v.length)
    return 0
  }
  const f = 127 / max
  for (let i = 0; i < v.length; i++) out[at + i] = Math.round(v[i]! * f)
  return max / 127
}

/**
 * The most key bits (of `width`) an entry at cosine `minScore` with the query is expected to differ on, with a
 * wide margin: the mean (width × angle / π) plus six standard deviations plus 8 bits, so a neighbour above the
 * threshold is practically never skipped (sparse hyperplanes spread the count a little more than dense ones).
 */
function hammingBound(minScore: number, width: number): number {
  if (minScore <= -1) return width
  const p = Math.acos(Math.min(1, minScore)) / Math.PI
  return Math.ceil(width * p + 6 * Math.sqrt(width * p * (1 - p)) + 8)
}

function popcount(x: number): number {
  x -= (x >>> 1) & 0x55555555
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333)
  return (Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24)
}

/** Sparse hyperplanes stored by dimension: `plane[k]`, `weight[k]` for k in `start[d]`..`start[d + 1]`. */
interface SparsePlanes {
  start: Int32Array
  plane: Int32Array
  weight: Float64Array
}

/**
 * Gaussian hyperplanes where each weight is kept with probability `density` (very sparse random projections:
 * signs of sparse projections still split vectors by angle, at a fraction of the cost). Every hyperplane
 * keeps at least one weight. Seeded (mulberry32 + Box-Muller), so two runs index the same way.
 */
function sparsePlanes(width: number, dims: number, density: number, seed: number): SparsePlanes {
  const rand = seededRandom(seed)
  const gauss = () => Math.sqrt(-2 * Math.log(Math.max(rand(), 1e-12))) * Math.cos(2 * Math.PI * rand())
  const byDim: { plane: number; weight: number }[][] = Array.from({ length: dims }, () => [])
  for (let j = 0; j < width; j++) {
    let kept = 0
    for (let d = 0; d < dims; d++) {
      if (density < 1 && rand() >= density) continue
      byDim[d]!.push({ plane: j, weight: gauss() })
      kept++
    }
    if (kept === 0) byDim[Math.floor(rand() * dims)]!.push({ plane: j, weight: gauss() })
  }
  const start = new Int32Array(dims + 1)
  for (let d = 0; d < dims; d++) start[d + 1] = start[d]! + byDim[d]!.length
  const plane = new Int32Array(start[dims]!)
  const weight = new Float64Array(start[dims]!)
  for (let d = 0, k = 0; d < dims; d++) {
    for (const w of byDim[d]!) {
      plane[k] = w.plane
      weight[k++] = w.weight
    }
  }
  return { start, plane, weight }
}

/**
 * The probe sequence of query-directed multi-probe LSH as sets of ranks (bit r set = flip the r-th closest
 * hyperplane): the `n` non-empty subsets of the `ranks` closest with the smallest expected cost, taking the
 * r-th smallest distance to grow like r + 1, so a set costs the sum of (r + 1)² over its ranks.
 */
function probeTemplate(ranks: number, n: number): Int32Array {
  const sets: { mask: number; cost: number }[] = []
  for (let mask = 1; mask < 1 << ranks; mask++) {
    let cost = 0
    for (let r = 0; r < ranks; r++) if (mask & (1 << r)) cost += (r + 1) * (r + 1)
    sets.push({ mask, cost })
  }
  sets.sort((x, y) => x.cost - y.cost || x.mask - y.mask)
  return Int32Array.from(sets.slice(0, n).map((s) => s.mask))
}
