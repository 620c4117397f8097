import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { get_encoding } from 'tiktoken'
import { describe, expect, it } from 'vitest'
import { countTextTokens } from '../src/tokens.js'

// countTextTokens sums remembered per-piece counts for ASCII text; it must equal tiktoken on the whole text.
const ALPHABET = ['a', 'e', 's', 'A', 'S', 'Ab', 'AB', '0', '12', '1234', ' ', '  ', '\t', '\n', '\r', '\r\n', ' \n', '\v', '\f', "'", "'s", "'S", "'t", "'re", "'RE", "'ve", "'m", "'ll", "'LL", "'d", "'x", '.', ',', '/', '//', '-', '_', '!', '(', '"', ':', '#', '@', '\\', '<', '=', 'hello', 'World', 'HTTP', "don't", "I'm"]

function texts(): string[] {
  let seed = 7
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32
  const out: string[] = []
  for (let i = 0; i < 6000; i++) {
    let t = ''
    for (let k = Math.floor(rnd() * 40); k > 0; k--) t += ALPHABET[Math.floor(rnd() * ALPHABET.length)]
    out.push(t)
  }
  for (let i = 0; i < 1500; i++) {
    let t = ''
    for (let k = Math.floor(rnd() * 120); k > 0; k--) t += String.fromCharCode(Math.floor(rnd() * 128))
    out.push(t)
  }
  // real ASCII-heavy text: this repository's sources, in chunks
  for (const f of readdirSync('src').filter((f) => f.endsWith('.ts'))) {
    const s = readFileSync(join('src', f), 'utf8')
    for (let i = 0; i < s.length; i += 600) out.push(s.slice(i, i + 600))
  }
  return out
}

describe('countTextTokens', () => {
  it.each(['o200k_base', 'cl100k_base'] as const)('equals tiktoken on the whole text (%s): random ASCII, contractions, whitespace, sources', (name) => {
    const enc = get_encoding(name)
    try {
      const wrong = texts().filter((t) => !/\S{256}/.test(t) && countTextTokens(t, name) !== enc.encode_ordinary(t).length)
      expect(wrong).toEqual([])
      // a repeated text and its pieces come from the memos and still agree
      const t = "Request 42: I'm routing the agent's tool call to the cache, don't retry.\n"
      expect(countTextTokens(t, name)).toBe(enc.encode_ordinary(t).length)
      expect(countTextTokens(t + t, name)).toBe(enc.encode_ordinary(t + t).length)
      expect(countTextTokens('naïve café 東京', name)).toBe(enc.encode_ordinary('naïve café 東京').length)
    } finally {
      enc.free()
    }
  })
})
