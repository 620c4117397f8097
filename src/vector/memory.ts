import type { VectorEntry, VectorIndex, VectorMatch, VectorSearch } from './types.js'

export interface MemoryIndexOptions {
  /** Length of the vectors (the embedder's). */
  dimensions: number
  /** Entries held; the oldest are evicted beyond this. */
  maxEntries?: number
  /** A scope with at most this many entries is scanned whole (exact); larger ones go through LSH buckets. */
  exactScanLimit?: number
  /** LSH tables and bits per table (sign random projections, probed with every one-bit flip). */
  tables?: number
  bits?: number
  /** Seed of the random hyperplanes, so two runs index the same way. */
  seed?: number
}

interface Partition {
  slots: Set<number>
  /**
   * One bucket map per table: key → slots. Built for every entry so a scope can outgrow the exact scan.
   * Most buckets hold one slot, kept as the number itself (an array per bucket was half of an entry's memory).
   */
  buckets: Map<number, number | number[]>[]
}

/**
 * The embedded default `VectorIndex`: everything in this process, bounded by entry count.
 *
 * Vectors are stored as int8 with one scale per vector (a quarter of the memory of float32; cosine error
 * under 0.005). Each scope is its own partition: small scopes are scanned exactly, large ones are searched
 * through locality-sensitive hashing (random hyperplanes) and re-ranked exactly, so lookups stay well under
 * a millisecond at 100k entries. LSH may miss a neighbour near the threshold; it never returns one below it.
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
  const planes = transpose(randomPlanes(width * dims, opts.seed ?? 0x5eed), width, dims)
  /** Scratch for hashKeys: one dot product per hyperplane. */
  const dots = new Float64Array(width)
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
  let generation = 0
  const scales: number[] = []
  /** Each slot's LSH keys, `tables` per slot, in one array like the vectors. */
  let keySlab = new Uint32Array(tables * 1024)
  const free: number[] = []
  /** id → slot, in insertion order (the eviction order). */
  const byId = new Map<string, number>()
  const partitions = new Map<string, Partition>()

  /**
   * The LSH key of a vector in each table. Planes are stored dimension-major, so the loop walks each
   * non-zero component once and adds it into every hyperplane's dot product (contiguous memory, and the
   * builtin embedder's vectors are half zeros). The sums run in dimension order in doubles, as a plain
   * per-plane dot product would, so the keys are the same bit for bit.
   */
  function hashKeys(vector: Float32Array): Uint32Array {
    const known = hashed.get(vector)
    if (known) return known
    dots.fill(0)
    for (let d = 0; d < dims; d++) {
      const x = vector[d]!
      if (x === 0) continue
      const base = d * width
      for (let j = 0; j < width; j++) dots[j]! += x * planes[base + j]!
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

  function remove(slot: number): void {
    const scope = scopes[slot]!
    const part = partitions.get(scope)
    if (part) {
      part.slots.delete(slot)
      const at0 = slot * tables
      for (let t = 0; t < tables; t++) {
        const map = part.buckets[t]!
        const key = keySlab[at0 + t]!
        const bucket = map.get(key)
        if (bucket === undefined) continue
        if (typeof bucket === 'number') {
          if (bucket === slot) map.delete(key)
          continue
        }
        const at = bucket.indexOf(slot)
        if (at >= 0) {
          bucket[at] = bucket[bucket.length - 1]!
          bucket.pop()
        }
        if (bucket.length === 0) map.delete(key)
      }
      if (part.slots.size === 0) partitions.delete(scope)
    }
    byId.delete(ids[slot]!)
    texts[slot] = ''
    free.push(slot)
  }

  /** The query's non-zero components (index, value), filled by `sparseQuery` for the search under way. */
  const nzIndex = new Int32Array(dims)
  const nzValue = new Float64Array(dims)
  let nz = 0

  /**
   * Keep the query's non-zero components when they are at most three quarters of it (the builtin embedder's
   * vectors are mostly zeros): scoring then skips the zero terms, which add nothing to the dot product, so
   * the scores stay the same bit for bit. Dense vectors keep the plain loop.
   */
  function sparseQuery(query: Float32Array): boolean {
    nz = 0
    for (let d = 0; d < dims; d++) {
      const x = query[d]!
      if (x === 0) continue
      nzIndex[nz] = d
      nzValue[nz++] = x
    }
    return nz * 4 <= dims * 3
  }

  function score(query: Float32Array, slot: number, sparse: boolean): number {
    const v = slab
    const base = slot * dims
    let dot = 0
    if (sparse) for (let k = 0; k < nz; k++) dot += nzValue[k]! * v[base + nzIndex[k]!]!
    else for (let d = 0; d < dims; d++) dot += query[d]! * v[base + d]!
    return dot * scales[slot]!
  }

  /** Calls visit once per candidate slot: the whole scope when small, else the LSH buckets near the query. */
  function forEachCandidate(part: Partition, query: Float32Array, visit: (slot: number) => void): void {
    if (part.slots.size <= exactScanLimit) {
      for (const slot of part.slots) visit(slot)
      return
    }
    const qk = hashKeys(query)
    if (++generation === 0xffffffff) {
      seenAt.fill(0)
      generation = 1
    }
    for (let t = 0; t < tables; t++) {
      const map = part.buckets[t]!
      // Probe the query's own bucket and each bucket one bit away: a near neighbour differs from the
      // query on a hyperplane it lies close to, so this recovers most of what exact-key LSH misses.
      for (let b = -1; b < bits; b++) {
        const key = b < 0 ? qk[t]! : (qk[t]! ^ (1 << b)) >>> 0
        const bucket = map.get(key)
        if (bucket === undefined) continue
        if (typeof bucket === 'number') {
          if (seenAt[bucket] !== generation) {
            seenAt[bucket] = generation
            visit(bucket)
          }
          continue
        }
        for (const s of bucket) {
          if (seenAt[s] === generation) continue
          seenAt[s] = generation
          visit(s)
        }
      }
    }
  }

  return {
    kind: 'memory',
    async init() {},

    async upsert(entry: VectorEntry) {
      if (entry.vector.length !== dims) {
        throw new Error(`vector has ${entry.vector.length} dimensions, the index ${dims}`)
      }
      const old = byId.get(entry.id)
      if (old !== undefined) remove(old)
      while (byId.size >= maxEntries) {
        const oldest = byId.values().next().value as number
        remove(oldest)
      }
      const slot = free.length > 0 ? free.pop()! : ids.length
      if ((slot + 1) * dims > slab.length) {
        const grown = new Int8Array(Math.max(slab.length * 2, (slot + 1) * dims))
        grown.set(slab)
        slab = grown
        const seen = new Uint32Array(grown.length / dims)
        seen.set(seenAt)
        seenAt = seen
        const keyed = new Uint32Array((grown.length / dims) * tables)
        keyed.set(keySlab)
        keySlab = keyed
      }
      const scale = quantize(entry.vector, slab, slot * dims)
      ids[slot] = entry.id
      scopes[slot] = entry.scope
      texts[slot] = entry.text
      expires[slot] = entry.expiresAt
      scales[slot] = scale
      const k = hashKeys(entry.vector)
      keySlab.set(k, slot * tables)
      byId.set(entry.id, slot)
      let part = partitions.get(entry.scope)
      if (!part) {
        part = { slots: new Set(), buckets: Array.from({ length: tables }, () => new Map()) }
        partitions.set(entry.scope, part)
      }
      part.slots.add(slot)
      for (let t = 0; t < tables; t++) {
        const map = part.buckets[t]!
        const bucket = map.get(k[t]!)
        if (bucket === undefined) map.set(k[t]!, slot)
        else if (typeof bucket === 'number') map.set(k[t]!, [bucket, slot])
        else bucket.push(slot)
      }
    },

    async search(vector: Float32Array, query: VectorSearch): Promise<VectorMatch[]> {
      const part = partitions.get(query.scope)
      if (!part || query.limit <= 0) return []
      const found: VectorMatch[] = []
      const expired: number[] = []
      const sparse = sparseQuery(vector)
      forEachCandidate(part, vector, (slot) => {
        if (expires[slot]! <= query.now) {
          expired.push(slot)
          return
        }
        const s = score(vector, slot, sparse)
        if (s >= query.minScore) found.push({ id: ids[slot]!, score: Math.min(1, s), text: texts[slot]! })
      })
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
      partitions.clear()
    }
  }
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

/** Row-major (plane × dimension) to dimension-major (dimension × plane). */
function transpose(planes: Float32Array, width: number, dims: number): Float32Array {
  const out = new Float32Array(planes.length)
  for (let j = 0; j < width; j++) for (let d = 0; d < dims; d++) out[d * width + j] = planes[j * dims + d]!
  return out
}

/** Gaussian hyperplanes from a small seeded PRNG (mulberry32 + Box-Muller). */
function randomPlanes(n: number, seed: number): Float32Array {
  let a = seed >>> 0
  const rand = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const out = new Float32Array(n)
  for (let i = 0; i < n; i++) {
    const u = Math.max(rand(), 1e-12)
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand())
  }
  return out
}
