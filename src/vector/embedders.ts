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
 * password?"), not synonyms: precise, with modest recall, and about seven microseconds per sentence.
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
  // NFKC leaves ASCII unchanged, and in ASCII the letters and digits are [a-z0-9] once lowercased: a prompt
  // in plain ASCII (most of them) skips the normalisation and the Unicode regex, and finds the same words.
  if (isAscii(text)) {
    const t = text.toLowerCase()
    let prev = -1
    let prevEnd = -1
    for (let i = 0; i < t.length; ) {
      if (!isAsciiWordChar(t.charCodeAt(i))) {
        i++
        continue
      }
      const start = i
      while (i < t.length && isAsciiWordChar(t.charCodeAt(i))) i++
      addWord(v, dims, t, start, i, prev, prevEnd)
      prev = start
      prevEnd = i
    }
  } else {
    const t = text.normalize('NFKC').toLowerCase()
    const words = /[\p{L}\p{N}]+/gu
    let prev = -1
    let prevEnd = -1
    for (let m = words.exec(t); m !== null; m = words.exec(t)) {
      const end = m.index + m[0].length
      addWord(v, dims, t, m.index, end, prev, prevEnd)
      prev = m.index
      prevEnd = end
    }
  }
  return normalize(v)
}

const FNV_OFFSET = 0x811c9dc5
const FNV_PRIME = 0x01000193
const CHAR_W = 0x77
const CHAR_B = 0x62
const CHAR_C = 0x63
const CHAR_SPACE = 0x20
const CHAR_LT = 0x3c
const CHAR_GT = 0x3e

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false
  return true
}

/** [a-z0-9]: the ASCII letters and digits of lowercased text. */
function isAsciiWordChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39)
}

/** One FNV-1a step (32 bits). */
function mix(h: number, c: number): number {
  return Math.imul(h ^ c, FNV_PRIME)
}

/** FNV-1a state after `t[start..end)`, from state `h`. */
function mixRange(h: number, t: string, start: number, end: number): number {
  for (let i = start; i < end; i++) h = Math.imul(h ^ t.charCodeAt(i), FNV_PRIME)
  return h
}

/**
 * The features of the word `t[start..end)`, in this order: 'w' + word, 'b' + previous word + ' ' + word,
 * 'c' + each trigram of '<' + word + '>'. Each is hashed as it is read (the same FNV-1a over the same
 * characters as hashing the built string, so the same vector, without a string per feature).
 */
function addWord(v: Float32Array, dims: number, t: string, start: number, end: number, prev: number, prevEnd: number): void {
  const len = end - start
  add(v, dims, mixRange(mix(FNV_OFFSET, CHAR_W), t, start, end), STOPWORDS.has(t.slice(start, end)) ? 0.3 : 1)
  if (prev >= 0) add(v, dims, mixRange(mix(mixRange(mix(FNV_OFFSET, CHAR_B), t, prev, prevEnd), CHAR_SPACE), t, start, end), 0.5)
  if (len <= 2) return
  // trigrams of '<' + word + '>': padded index p is '<' at 0, the word at 1..len, '>' at len + 1
  const c0 = mix(FNV_OFFSET, CHAR_C)
  for (let p = 0; p + 3 <= len + 2; p++) {
    let h = c0
    for (let q = p; q < p + 3; q++) h = mix(h, q === 0 ? CHAR_LT : q === len + 1 ? CHAR_GT : t.charCodeAt(start + q - 1))
    add(v, dims, h, 0.25)
  }
}

/** Adds ±weight at the dimension of a feature hash: the low bits pick the dimension, the top bit the sign (keeps collisions unbiased). */
function add(v: Float32Array, dims: number, hash: number, weight: number): void {
  // h % dims of a power of two is its low bits: an int mask instead of a floating-point remainder (h ≥ 2³¹)
  const at = (dims & (dims - 1)) === 0 ? hash & (dims - 1) : (hash >>> 0) % dims
  v[at]! += hash < 0 ? -weight : weight
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
