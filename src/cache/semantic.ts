import { newId } from '../ids.js'
import type { Embedder, VectorIndex } from '../vector/types.js'
import { meaningFlip, type Flip } from './guard.js'
import type { SemanticQuery } from './key.js'

export interface SemanticCandidate {
  /** Index entry id; the answer is stored under `semanticEntryKey(id)`. */
  id: string
  similarity: number
  text: string
}

export interface SemanticLookup {
  /** Candidates at or above the threshold that passed the meaning-flip guard, best first. */
  candidates: SemanticCandidate[]
  /** Candidates the guard turned away, for logs and tests. */
  rejected: (SemanticCandidate & { flip: Flip })[]
  /** The query's vector, reused when the answer is remembered. */
  vector: Float32Array
}

export interface SemanticLookupOptions {
  threshold: number
  now: number
  signal?: AbortSignal
  /** Nearest entries fetched (default: the cache's `maxCandidates`). */
  limit?: number
  /** Reject candidates whose text flips the meaning (default true). */
  guard?: boolean
}

export interface SemanticCache {
  readonly embedder: Embedder
  readonly index: VectorIndex
  lookup(query: SemanticQuery, opts: SemanticLookupOptions): Promise<SemanticLookup>
  /** Adds the query to the index; returns the new entry's id. */
  remember(query: SemanticQuery, vector: Float32Array, expiresAt: number): Promise<string>
}

/** Store key of a semantic entry's answer (the index holds only vectors and texts). */
export function semanticEntryKey(id: string): string {
  return `cache:s:${id}`
}

/**
 * The semantic layer: embed the last user turn, search its scope, keep the candidates above the threshold
 * whose text asks the same thing (no negation, number, polar-word, identifier or word-order flip; the guard
 * can be turned off per lookup).
 *
 * @example
 * const semantic = createSemanticCache({ embedder: createBuiltinEmbedder(), index: createMemoryIndex({ dimensions: 256 }) })
 * const { candidates } = await semantic.lookup(query, { threshold: 0.9, now: Date.now() })
 */
export function createSemanticCache(deps: { embedder: Embedder; index: VectorIndex; maxCandidates?: number }): SemanticCache {
  const { embedder, index } = deps
  const limit = deps.maxCandidates ?? 5
  return {
    embedder,
    index,
    async lookup(query, opts) {
      const [vector] = await embedder.embed([query.text], opts.signal)
      const found = await index.search(vector!, { scope: query.scope, minScore: opts.threshold, limit: opts.limit ?? limit, now: opts.now })
      const candidates: SemanticCandidate[] = []
      const rejected: SemanticLookup['rejected'] = []
      for (const m of found) {
        const c = { id: m.id, similarity: m.score, text: m.text }
        const flip = opts.guard === false ? undefined : meaningFlip(query.text, m.text)
        if (flip) rejected.push({ ...c, flip })
        else candidates.push(c)
      }
      return { candidates, rejected, vector: vector! }
    },
    async remember(query, vector, expiresAt) {
      const id = newId()
      await index.upsert({ id, vector, scope: query.scope, text: query.text, expiresAt })
      return id
    }
  }
}
