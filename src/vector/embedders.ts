import type { Provider } from '../providers/types.js'
import type { Embedder } from './types.js'

/**
 * Default thresholds, chosen with bench/mrpc-threshold.ts (see README, Caching, for the table).
 * Model embedders could not be measured on the build machines (no embedding model available there):
 * their default is deliberately strict; run the bench with the model and set `semantic.threshold`.
 */
export const DEFAULT_THRESHOLDS = { builtin: 0.85, llama: 0.95, upstream: 0.95 } as const

/** Words that carry little meaning on their own: weighted down, not dropped (they still shape bigrams). */
const STOPWORDS = new Set(
  ('a an the of to in on at by for with from and or but as is are was were be been being it its this that ' +
    'these those i me my you your we our he she they them his her their do does did have has had will would ' +
    'shall should can could may might must so if then than there here what which who whom how when where why').split(' ')
)

export interface BuiltinEmbedderOptions {
  /** Vector length; more dimensions mean fewer hash collisions (default 256). */
  dimensions?: number
}

/**
 * A model-free embedding: signed feature hashing of words, word bigrams and character trigrams, L2-normalised.
 * Catches rewordings that share most words or word forms ("reset my password" / "how do I reset my
 * password?"), not synonyms: precise, with modest recall, and about ten microseconds per sentence.
 *
 * @example
 * const embedder = createBuiltinEmbedder()
 * const [v] = await embedder.embed(['how do I enable 2FA?'])
 */
export function createBuiltinEmbedder(opts: BuiltinEmbedderOptions = {}): Embedder {
  const dims = opts.dimensions ?? 256
  return {
    kind: 'builtin',
    dimensions: dims,
    defaultThreshold: DEFAULT_THRESHOLDS.builtin,
    async embed(texts) {
      return texts.map((t) => embedText(t, dims))
    }
  }
}

/** The builtin embedding of one text (synchronous: used by the bench and the index latency measurement). */
export function embedText(text: string, dims: number): Float32Array {
  const v = new Float32Array(dims)
  const words = text.normalize('NFKC').toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []
  let prev: string | undefined
  for (const w of words) {
    add(v, dims, 'w' + w, STOPWORDS.has(w) ? 0.3 : 1)
    if (prev !== undefined) add(v, dims, 'b' + prev + ' ' + w, 0.5)
    prev = w
    const padded = '<' + w + '>'
    if (padded.length > 4) for (let i = 0; i + 3 <= padded.length; i++) add(v, dims, 'c' + padded.slice(i, i + 3), 0.25)
  }
  return normalize(v)
}

function add(v: Float32Array, dims: number, feature: string, weight: number): void {
  // FNV-1a, 32 bits: the low bits pick the dimension, the top bit the sign (keeps collisions unbiased).
  let h = 0x811c9dc5
  for (let i = 0; i < feature.length; i++) {
    h ^= feature.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h >>>= 0
  v[h % dims]! += h & 0x80000000 ? -weight : weight
}

/** Scales to unit length in place (a zero vector stays zero). */
export function normalize(v: Float32Array): Float32Array {
  let sum = 0
  for (let i = 0; i < v.length; i++) sum += v[i]! * v[i]!
  if (sum === 0) return v
  const inv = 1 / Math.sqrt(sum)
  for (let i = 0; i < v.length; i++) v[i]! *= inv
  return v
}

export interface ProviderEmbedderOptions {
  /** `llama` for an in-process GGUF model, `upstream` for an embeddings API. */
  kind: 'llama' | 'upstream'
  /**
   * The provider and its own model name, resolved on every call: the gateway's providers are rebuilt on
   * config reloads, and the embedder must follow them rather than hold a closed one.
   */
  resolve: () => { provider: Provider; model: string }
  /** Overrides the default threshold of the kind. */
  threshold?: number
  /** Milliseconds before an embedding call is abandoned (the request then skips the semantic layer). */
  timeoutMs?: number
}

/**
 * An embedder over a provider's `embed()`: a llama provider loaded with `embedding: true`, or an upstream
 * `/v1/embeddings` model. Vectors are re-normalised, so cosine is a dot product whatever the model returns.
 *
 * @example
 * const embedder = createProviderEmbedder({ kind: 'upstream', resolve: () => ({ provider: openai, model: 'text-embedding-3-small' }) })
 */
export function createProviderEmbedder(opts: ProviderEmbedderOptions): Embedder {
  let dims: number | undefined
  return {
    kind: opts.kind,
    get dimensions() {
      return dims
    },
    defaultThreshold: opts.threshold ?? DEFAULT_THRESHOLDS[opts.kind],
    async embed(texts, signal) {
      const { provider, model } = opts.resolve()
      if (!provider.embed) throw new Error(`provider "${provider.name}" cannot embed`)
      const unavailable = provider.unavailableReason?.()
      if (unavailable) throw new Error(`provider "${provider.name}" is unavailable: ${unavailable}`)
      const timeout = AbortSignal.timeout(opts.timeoutMs ?? 10_000)
      const res = await provider.embed(
        { model, input: texts, encoding_format: 'float' },
        { signal: signal ? AbortSignal.any([signal, timeout]) : timeout }
      )
      const rows = [...res.data].sort((a, b) => a.index - b.index)
      if (rows.length !== texts.length) throw new Error(`embedder returned ${rows.length} vectors for ${texts.length} texts`)
      return rows.map((row) => {
        if (typeof row.embedding === 'string') throw new Error('embedder returned base64; expected floats')
        const v = normalize(Float32Array.from(row.embedding))
        dims ??= v.length
        if (v.length !== dims) throw new Error(`embedder returned ${v.length} dimensions, expected ${dims}`)
        return v
      })
    }
  }
}
