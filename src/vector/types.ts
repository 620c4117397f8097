/**
 * The semantic cache's two small interfaces: an `Embedder` turns text into a unit vector, a `VectorIndex`
 * finds stored vectors near a query within one scope.
 */

export interface Embedder {
  /** `builtin`, `llama` or `upstream`: picks the default similarity threshold. */
  readonly kind: 'builtin' | 'llama' | 'upstream'
  /** Length of every vector this embedder returns (known after the first call for model embedders). */
  readonly dimensions: number | undefined
  /** Cosine similarity at which this embedder's candidates count as the same question (measured on MRPC). */
  readonly defaultThreshold: number
  /** L2-normalised vectors, one per text. */
  embed(texts: string[], signal?: AbortSignal): Promise<Float32Array[]>
}

export interface VectorEntry {
  /** A UUID (Qdrant accepts only UUIDs or integers as point ids). */
  id: string
  /** L2-normalised. */
  vector: Float32Array
  /** Tenant and context hash: a search never returns an entry of another scope. */
  scope: string
  /** The embedded text, kept so candidates can be checked for meaning flips. */
  text: string
  /** Epoch milliseconds after which the entry is never returned. */
  expiresAt: number
}

export interface VectorMatch {
  id: string
  /** Cosine similarity, 1 = same direction. */
  score: number
  text: string
}

export interface VectorSearch {
  scope: string
  /** Only matches at or above this similarity. */
  minScore: number
  limit: number
  /** Epoch milliseconds; expired entries are skipped. */
  now: number
}

/**
 * Nearest-neighbour search, filtered by scope. Implementations: in-process (embedded default) and Qdrant.
 */
export interface VectorIndex {
  readonly kind: 'memory' | 'qdrant'
  /** What the index was built with, in words, for the start-up log (e.g. its bounds and search settings). */
  readonly settings: string
  /** Prepare the backend (Qdrant: create the collection and its payload indexes). Idempotent. */
  init(): Promise<void>
  upsert(entry: VectorEntry): Promise<void>
  /** Best first. */
  search(vector: Float32Array, query: VectorSearch): Promise<VectorMatch[]>
  delete(id: string): Promise<void>
  /** Entries held (expired ones may still be counted until pruned). */
  size(): Promise<number>
  close(): Promise<void>
}
