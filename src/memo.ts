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
 */
export function createTextMemo<V>(compute: (text: string) => V, maxChars: number): (text: string) => V {
  const values = new Map<string, V>()
  let chars = 0
  return (text) => {
    const known = values.get(text)
    if (known !== undefined) {
      // a Map keeps insertion order: set again, the text becomes the most recently used
      values.delete(text)
      values.set(text, known)
      return known
    }
    const value = compute(text)
    values.set(text, value)
    chars += text.length
    while (chars > maxChars) {
      const oldest = values.keys().next().value as string
      values.delete(oldest)
      chars -= oldest.length
    }
    return value
  }
}
