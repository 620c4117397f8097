import { QdrantClient } from '@qdrant/js-client-rest'
import type { VectorEntry, VectorIndex, VectorMatch, VectorSearch } from './types.js'

export interface QdrantIndexOptions {
  url: string
  apiKey?: string
  collection?: string
  /** Length of the vectors (the embedder's). */
  dimensions: number
  /** Delete expired points every this many upserts (Qdrant has no TTL of its own). */
  pruneEvery?: number
  /** Request timeout in milliseconds. */
  timeoutMs?: number
}

/**
 * `VectorIndex` on Qdrant (server 1.10 or later: searches use the Query API), for many gateway instances
 * sharing one semantic cache. `init()` creates the collection (cosine distance) unless it exists, checks that
 * an existing one holds vectors of the embedder's size and cosine distance (a changed embedder would fail
 * every upsert), and creates keyword/integer payload indexes on `scope` and `expires_at`; every search
 * filters on both, so no point of another scope, and no expired point, is ever returned.
 *
 * @example
 * const index = createQdrantIndex({ url: process.env.QDRANT_URL!, dimensions: 256 })
 * await index.init()
 */
export function createQdrantIndex(opts: QdrantIndexOptions): VectorIndex {
  const client = new QdrantClient({
    url: opts.url,
    apiKey: opts.apiKey,
    timeout: opts.timeoutMs ?? 5_000,
    checkCompatibility: false
  })
  const collection = opts.collection ?? 'sluice_semantic_cache'
  const pruneEvery = opts.pruneEvery ?? 500
  let upserts = 0

  async function prune(now: number): Promise<void> {
    await client.delete(collection, {
      wait: false,
      filter: { must: [{ key: 'expires_at', range: { lte: now } }] }
    })
  }

  /** An existing collection made for another embedder cannot take this one's vectors: say so at start. */
  async function checkVectors(): Promise<void> {
    const info = await client.getCollection(collection)
    const vectors = info.config.params.vectors as { size?: unknown; distance?: unknown } | undefined
    const where = `Qdrant collection "${collection}" at ${opts.url}`
    const fix =
      'Fix: set semantic_cache.index.collection to a new name (the gateway creates it), or delete the collection ' +
      '(its entries were embedded by another model), or go back to the embedder that filled it'
    if (typeof vectors?.size !== 'number') {
      throw new Error(`${where} uses named vectors; Sluice needs one unnamed vector per point. ${fix}.`)
    }
    if (vectors.size !== opts.dimensions) {
      throw new Error(`${where} holds ${vectors.size}-dimension vectors, but the embedder makes ${opts.dimensions}. ${fix}.`)
    }
    if (vectors.distance !== 'Cosine') {
      throw new Error(`${where} uses ${String(vectors.distance)} distance; Sluice's thresholds are cosine similarities. ${fix}.`)
    }
  }

  return {
    kind: 'qdrant',
    settings: `collection "${collection}"`,

    async init() {
      const { exists } = await client.collectionExists(collection)
      if (!exists) {
        try {
          await client.createCollection(collection, { vectors: { size: opts.dimensions, distance: 'Cosine' } })
        } catch (err) {
          // Another gateway instance may have created it between our check and our call.
          if (!(await client.collectionExists(collection)).exists) throw err
        }
      }
      await checkVectors()
      await client.createPayloadIndex(collection, { field_name: 'scope', field_schema: 'keyword', wait: true })
      await client.createPayloadIndex(collection, { field_name: 'expires_at', field_schema: 'integer', wait: true })
    },

    async upsert(entry: VectorEntry) {
      await client.upsert(collection, {
        wait: true,
        points: [
          {
            id: entry.id,
            vector: Array.from(entry.vector),
            payload: { scope: entry.scope, text: entry.text, expires_at: entry.expiresAt }
          }
        ]
      })
      if (++upserts % pruneEvery === 0) await prune(Date.now())
    },

    async search(vector: Float32Array, query: VectorSearch): Promise<VectorMatch[]> {
      if (query.limit <= 0) return []
      const { points } = await client.query(collection, {
        query: Array.from(vector),
        limit: query.limit,
        score_threshold: query.minScore,
        with_payload: true,
        filter: {
          must: [
            { key: 'scope', match: { value: query.scope } },
            { key: 'expires_at', range: { gt: query.now } }
          ]
        }
      })
      return points.map((p) => ({
        id: String(p.id),
        score: p.score,
        text: typeof p.payload?.text === 'string' ? p.payload.text : ''
      }))
    },

    async delete(id: string) {
      await client.delete(collection, { wait: true, points: [id] })
    },

    async size() {
      return (await client.count(collection, { exact: true })).count
    },

    async close() {}
  }
}
