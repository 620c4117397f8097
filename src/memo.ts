import { createLru } from './lru.js'

/** A remembered function of text; `peek` answers only from what is remembered, computing nothing. */
export interface TextMemo<V> {
  (text: string): V
  peek(text: string): V | undefined
}

/**
 * A pure function of text, remembered: each text is computed once while it is remembered, least recently used
 * out first, and the remembered texts hold at most `maxChars` characters in all. For input that repeats: an agent
 * resends its system prompt and the whole conversation every turn. The caller decides which texts are worth
 * remembering (a very long one would push out many short ones).
 *
 * @example
 * const count = createTextMemo((text) => enc.encode_ordinary(text).length, 2_000_000)
 * count('hello') // computed
 * count('hello') // remembered
 * count.peek('world') // undefined: never computed
 */
export function createTextMemo<V>(compute: (text: string) => V, maxChars: number): TextMemo<V> {
  const values = createLru<string, V>({ max: maxChars, weigh: (text) => text.length })
  const memo = (text: string): V => {
    const known = values.get(text)
    if (known !== undefined) return known
    const value = compute(text)
    values.set(text, value)
    return value
  }
  // a read that neither computes nor refreshes: callers with a cheaper answer for unknown texts
  memo.peek = (text: string): V | undefined => values.peek(text)
  return memo
}
