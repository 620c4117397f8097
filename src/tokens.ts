import { createRequire } from 'node:module'
import type { Tiktoken, TiktokenEncoding } from 'tiktoken'
import { createTextMemo, type TextMemo } from './memo.js'
import type { ChatMessage, ChatRequest } from './types.js'

const encoders = new Map<string, Tiktoken>()
// tiktoken is required on first use, not imported: its module alone holds about 20 MB of WebAssembly, and a
// gateway whose budgets reserve on the byte bound may never count a token (README, Performance: "RSS").
const require = createRequire(import.meta.url)
let getEncoding: typeof import('tiktoken').get_encoding | undefined

/** Whether tiktoken has been loaded in this process (tests and the RSS notes read it). */
export function tokenizerLoaded(): boolean {
  return getEncoding !== undefined
}

/** The tiktoken encoding for a model: o200k for the 4o/4.1/o-series, cl100k otherwise (a close count for non-OpenAI models). */
export function encodingFor(model: string, explicit?: string): TiktokenEncoding {
  if (explicit) return explicit as TiktokenEncoding
  return /^(gpt-4o|gpt-4\.1|gpt-5|o\d|chatgpt)/.test(model) ? 'o200k_base' : 'cl100k_base'
}

function encoder(name: TiktokenEncoding): Tiktoken {
  let enc = encoders.get(name)
  if (!enc) {
    getEncoding ??= (require('tiktoken') as typeof import('tiktoken')).get_encoding
    enc = getEncoding(name)
    encoders.set(name, enc)
  }
  return enc
}

/**
 * Load the encodings these models are counted with now rather than on the first request that needs one
 * (about 350 ms for o200k_base, which blocks the event loop). Encodings no model uses stay unloaded.
 * Whether the CLI calls it at all is `tokenizer.preload` (see `shouldPreloadEncodings`).
 *
 * @example
 * preloadEncodings(Object.values(config.models)) // ['o200k_base']
 */
export function preloadEncodings(models: Iterable<{ model: string; encoding?: string }>): TiktokenEncoding[] {
  const names = new Set<TiktokenEncoding>()
  for (const m of models) names.add(encodingFor(m.model, m.encoding))
  const loaded: TiktokenEncoding[] = []
  for (const name of names) {
    try {
      encoder(name)
      loaded.push(name)
    } catch {
      // an unknown `encoding:` fails where it is counted, as it did before preloading
    }
  }
  return loaded
}

/**
 * Whether a config counts tokens on routine requests, so its encodings are worth loading before the port opens:
 * `always`, or `auto` with a `tpm` rate limit in some team policy (token rate limits count every prompt exactly).
 * Otherwise budgets reserve on the byte bound and tiktoken loads on the first exact count (a refusal, a prompt
 * whose bytes exceed `max_input_tokens`, a response without usage), which pays the load once.
 *
 * @example
 * shouldPreloadEncodings({ tokenizer: { preload: 'auto' }, policies: { a: { rate_limits: [{ tpm: 1000 }] } } }) // true
 */
export function shouldPreloadEncodings(config: {
  tokenizer: { preload: 'auto' | 'always' | 'never' }
  policies: Record<string, { rate_limits: { rpm?: number; tpm?: number }[] }>
}): boolean {
  const { preload } = config.tokenizer
  if (preload !== 'auto') return preload === 'always'
  return Object.values(config.policies).some((p) => p.rate_limits.some((r) => r.tpm !== undefined))
}

// BPE merging is quadratic in the length of one pre-token: 100k letters without a space take ~13 s and
// block the event loop. Runs longer than this are counted in pieces (at most one token off per cut).
const LONG_RUN = 256
const HAS_LONG_RUN = new RegExp(`\\S{${LONG_RUN}}`)
const SPLIT_LONG_RUNS = new RegExp(`(\\S{${LONG_RUN}})`)

/** Characters of text whose counts are remembered, per encoding (a few MB at most). */
const MEMO_CHARS = 2_000_000
/** Longer texts are counted every time rather than take a large share of the memo. */
const MEMO_TEXT_MAX = 200_000
const memos = new Map<string, TextMemo<number>>()

/**
 * Count the tokens of a text; exact unless it holds runs of 256+ non-space characters, linear time always.
 * Counts are remembered, least recently used out first: agents resend the whole conversation every turn
 * and the same system prompt every request, so most of a prompt was counted before, and tiktoken was the
 * costliest step of admission.
 */
export function countTextTokens(text: string, encoding: TiktokenEncoding = 'cl100k_base'): number {
  if (!text) return 0
  if (text.length > MEMO_TEXT_MAX) return countUncached(text, encoding)
  return memoFor(encoding)(text)
}

function memoFor(encoding: TiktokenEncoding): TextMemo<number> {
  let count = memos.get(encoding)
  if (!count) memos.set(encoding, (count = createTextMemo((t) => countUncached(t, encoding), MEMO_CHARS)))
  return count
}

/**
 * At least as many tokens as tiktoken counts in a text, without running it: the remembered count when the
 * text was counted before, else its UTF-8 length (every BPE token of these encodings is at least one byte).
 * For budget reservations, where an upper bound suffices and the provider reports the real count after.
 *
 * @example
 * textTokenBound('hello world', 'o200k_base') // 11, or 2 once the text has been counted
 */
export function textTokenBound(text: string, encoding: TiktokenEncoding = 'cl100k_base'): number {
  if (!text) return 0
  return memoFor(encoding).peek(text) ?? Buffer.byteLength(text, 'utf8')
}

function countUncached(text: string, encoding: TiktokenEncoding): number {
  const enc = encoder(encoding)
  if (!HAS_LONG_RUN.test(text)) return enc.encode_ordinary(text).length
  let n = 0
  for (const piece of text.split(SPLIT_LONG_RUNS)) if (piece) n += enc.encode_ordinary(piece).length
  return n
}

/**
 * Count the prompt tokens of a chat request the way OpenAI bills them (3 tokens of framing per message,
 * 3 for the reply primer), including tool definitions. Images count a flat 765 tokens (a high-detail tile set).
 *
 * @example
 * countPromptTokens({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }) // 9
 */
export function countPromptTokens(req: Pick<ChatRequest, 'messages' | 'tools'> & { model?: string }, encoding?: TiktokenEncoding): number {
  return promptTokens(req, encoding ?? encodingFor(req.model ?? ''), countTextTokens)
}

/**
 * An upper bound of `countPromptTokens` that runs no tokenizer: texts counted before count exactly, others by
 * their UTF-8 length (`textTokenBound`). What budget reservations use when nothing needs the exact count.
 *
 * @example
 * promptTokenBound({ messages: [{ role: 'user', content: 'hi' }] }, 'o200k_base') // >= countPromptTokens(...)
 */
export function promptTokenBound(req: Pick<ChatRequest, 'messages' | 'tools'> & { model?: string }, encoding?: TiktokenEncoding): number {
  return promptTokens(req, encoding ?? encodingFor(req.model ?? ''), textTokenBound)
}

type CountText = (text: string, enc: TiktokenEncoding) => number

function promptTokens(req: Pick<ChatRequest, 'messages' | 'tools'>, enc: TiktokenEncoding, count: CountText): number {
  let n = 3
  for (const m of req.messages) n += 3 + countMessage(m, enc, count)
  if (req.tools?.length) n += count(JSON.stringify(req.tools), enc)
  return n
}

function countMessage(m: ChatMessage, enc: TiktokenEncoding, count: CountText): number {
  let n = count(m.role, enc)
  if (typeof m.content === 'string') n += count(m.content, enc)
  else if (Array.isArray(m.content)) {
    for (const part of m.content) {
      if (part.type === 'text' && typeof part.text === 'string') n += count(part.text, enc)
      else if (part.type === 'image_url') n += 765
    }
  }
  if (m.tool_calls) for (const c of m.tool_calls) n += count(c.function.name + c.function.arguments, enc)
  if (m.name) n += 1
  return n
}
