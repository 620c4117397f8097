/**
 * A tiny random-weight llama model for tests: a SentencePiece-style vocabulary (specials, 256 byte-fallback
 * tokens, a few word pieces), ChatML chat template, 2 layers, 64-wide, F32. About 0.6 MB, deterministic.
 */
import { writeGguf, type GgufTensor, type GgufValue } from './writer.js'
import { seededRandom } from '../../src/random.js'

export interface TinyLlamaOptions {
  /** PRNG seed for the weights. */
  seed?: number
  layers?: number
  /** Embedding width; a multiple of `heads`. */
  embd?: number
  heads?: number
  kvHeads?: number
  ff?: number
  contextLength?: number
  /** `mean` writes `llama.pooling_type = 1` so embedding contexts pool over the sequence. */
  pooling?: 'none' | 'mean'
  /** Standard deviation of the random weights: larger spreads the output distribution. */
  weightScale?: number
  /**
   * Zero the output rows of `</s>` and `<|im_end|>`: their logit is then always 0 while the best token's is
   * several units above, so greedy generation runs to max_tokens (tests of abort and queueing need long
   * generations). Sampling at temperature 1 still draws one of them now and then (7 of 3,000 five-token runs
   * ended early): a test that counts tokens samples greedily or with a fixed seed.
   */
  suppressEndOfTurn?: boolean
}

export interface TinyLlamaInfo {
  path: string
  vocabSize: number
  embd: number
  bos: number
  eos: number
  /** `<|im_end|>`, the end of a ChatML turn. */
  eot: number
}

/** Token types (llama.cpp `llama_token_type`). */
const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, BYTE = 6
const BOS = 1, EOS = 2, EOT = 4

/** ChatML: node-llama-cpp recognises it and uses its ChatML wrapper (function calling included). */
export const CHATML_TEMPLATE =
  "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

const WORDS = [
  'the', 'a', 'and', 'of', 'to', 'in', 'is', 'it', 'you', 'that', 'he', 'was', 'for', 'on', 'are', 'with', 'as', 'I',
  'his', 'they', 'be', 'at', 'one', 'have', 'this', 'from', 'or', 'had', 'by', 'hot', 'word', 'but', 'what', 'some',
  'we', 'can', 'out', 'other', 'were', 'all', 'there', 'when', 'up', 'use', 'your', 'how', 'said', 'an', 'each', 'she',
  'hello', 'world', 'model', 'token', 'cache', 'budget', 'gateway', 'sluice', 'llama', 'test', 'yes', 'no', 'ok'
]

/** A seeded uniform source, then Box-Muller for normal deviates. */
function normalSource(seed: number) {
  const uniform = seededRandom(seed)
  return () => Math.sqrt(-2 * Math.log(uniform() + 1e-12)) * Math.cos(2 * Math.PI * uniform())
}

function buildVocab() {
  const tokens: string[] = ['<unk>', '<s>', '</s>', '<|im_start|>', '<|im_end|>']
  const types: number[] = [UNKNOWN, CONTROL, CONTROL, CONTROL, CONTROL]
  const scores: number[] = [0, 0, 0, 0, 0]
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`)
    types.push(BYTE)
    scores.push(0)
  }
  // SentencePiece pieces: "▁" marks a leading space; higher score merges first.
  // llama.cpp's SPM tokenizer merges pairs, so every prefix of a word piece must be a piece too.
  const pieces = new Set(['▁', ...'abcdefghijklmnopqrstuvwxyz'.split('')])
  for (const w of WORDS) for (let i = 1; i <= w.length; i++) pieces.add(`▁${w.slice(0, i)}`)
  for (const [i, p] of [...pieces].entries()) {
    tokens.push(p)
    types.push(NORMAL)
    scores.push(-i)
  }
  return { tokens, types, scores }
}

/**
 * Write a tiny random-weight llama GGUF that llama.cpp (via node-llama-cpp) loads, chats with and embeds with.
 *
 * @example
 * const info = await writeTinyLlamaGguf(join(dir, 'tiny.gguf'), { seed: 7 })
 * const model = await llama.loadModel({ modelPath: info.path })
 */
export async function writeTinyLlamaGguf(path: string, opts: TinyLlamaOptions = {}): Promise<TinyLlamaInfo> {
  const layers = opts.layers ?? 2
  const embd = opts.embd ?? 64
  const heads = opts.heads ?? 4
  const kvHeads = opts.kvHeads ?? 2
  const ff = opts.ff ?? 128
  const headDim = embd / heads
  if (!Number.isInteger(headDim)) throw new Error('embd must be a multiple of heads')
  const scale = opts.weightScale ?? 0.5
  const normal = normalSource(opts.seed ?? 1234)
  const { tokens, types, scores } = buildVocab()
  const vocab = tokens.length

  const random = (n: number, std: number) => {
    const a = new Float32Array(n)
    for (let i = 0; i < n; i++) a[i] = normal() * std
    return a
  }
  const ones = (n: number) => new Float32Array(n).fill(1)
  // Scale by fan-in so activations stay O(1) and logits keep a spread distribution.
  const matrix = (name: string, cols: number, rows: number): GgufTensor => ({
    name,
    dims: [cols, rows],
    data: random(cols * rows, scale / Math.sqrt(cols) * 4)
  })

  const output = matrix('output.weight', embd, vocab)
  if (opts.suppressEndOfTurn) for (const id of [EOS, EOT]) output.data.fill(0, id * embd, (id + 1) * embd)
  const tensors: GgufTensor[] = [
    { name: 'token_embd.weight', dims: [embd, vocab], data: random(embd * vocab, 1) },
    { name: 'output_norm.weight', dims: [embd], data: ones(embd) },
    output
  ]
  for (let i = 0; i < layers; i++) {
    tensors.push(
      { name: `blk.${i}.attn_norm.weight`, dims: [embd], data: ones(embd) },
      matrix(`blk.${i}.attn_q.weight`, embd, embd),
      matrix(`blk.${i}.attn_k.weight`, embd, kvHeads * headDim),
      matrix(`blk.${i}.attn_v.weight`, embd, kvHeads * headDim),
      matrix(`blk.${i}.attn_output.weight`, embd, embd),
      { name: `blk.${i}.ffn_norm.weight`, dims: [embd], data: ones(embd) },
      matrix(`blk.${i}.ffn_gate.weight`, embd, ff),
      matrix(`blk.${i}.ffn_up.weight`, embd, ff),
      matrix(`blk.${i}.ffn_down.weight`, ff, embd)
    )
  }

  const metadata: Record<string, GgufValue> = {
    'general.architecture': { type: 'string', value: 'llama' },
    'general.name': { type: 'string', value: 'sluice-tiny-llama' },
    'general.file_type': { type: 'u32', value: 0 },
    'llama.context_length': { type: 'u32', value: opts.contextLength ?? 4096 },
    'llama.embedding_length': { type: 'u32', value: embd },
    'llama.block_count': { type: 'u32', value: layers },
    'llama.feed_forward_length': { type: 'u32', value: ff },
    'llama.attention.head_count': { type: 'u32', value: heads },
    'llama.attention.head_count_kv': { type: 'u32', value: kvHeads },
    'llama.attention.layer_norm_rms_epsilon': { type: 'f32', value: 1e-5 },
    'llama.rope.dimension_count': { type: 'u32', value: headDim },
    'llama.rope.freq_base': { type: 'f32', value: 10000 },
    'llama.vocab_size': { type: 'u32', value: vocab },
    'tokenizer.ggml.model': { type: 'string', value: 'llama' },
    'tokenizer.ggml.tokens': { type: 'array', of: 'string', value: tokens },
    'tokenizer.ggml.scores': { type: 'array', of: 'f32', value: scores },
    'tokenizer.ggml.token_type': { type: 'array', of: 'i32', value: types },
    'tokenizer.ggml.unknown_token_id': { type: 'u32', value: 0 },
    'tokenizer.ggml.bos_token_id': { type: 'u32', value: BOS },
    'tokenizer.ggml.eos_token_id': { type: 'u32', value: EOS },
    'tokenizer.ggml.eot_token_id': { type: 'u32', value: EOT },
    'tokenizer.ggml.add_bos_token': { type: 'bool', value: true },
    'tokenizer.ggml.add_eos_token': { type: 'bool', value: false },
    'tokenizer.chat_template': { type: 'string', value: CHATML_TEMPLATE }
  }
  if (opts.pooling === 'mean') metadata['llama.pooling_type'] = { type: 'u32', value: 1 }

  await writeGguf(path, metadata, tensors)
  return { path, vocabSize: vocab, embd, bos: BOS, eos: EOS, eot: EOT }
}
