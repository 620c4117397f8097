import { describe, expect, it } from 'vitest'
import { createTextMemo } from '../src/memo.js'

describe('createTextMemo', () => {
  it('computes each text once while it is remembered', () => {
    const seen: string[] = []
    const length = createTextMemo((t) => (seen.push(t), t.length), 100)
    expect(length('abc')).toBe(3)
    expect(length('abc')).toBe(3)
    expect(length('de')).toBe(2)
    expect(seen).toEqual(['abc', 'de'])
  })

  it('forgets the least recently used texts once the characters pass the bound', () => {
    const seen: string[] = []
    const upper = createTextMemo((t) => (seen.push(t), t.toUpperCase()), 6)
    upper('aaa')
    upper('bbb')
    upper('aaa') // now bbb is the least recently used
    upper('ccc') // 9 characters: bbb goes
    seen.length = 0
    expect(upper('aaa')).toBe('AAA')
    expect(upper('ccc')).toBe('CCC')
    expect(seen).toEqual([])
    expect(upper('bbb')).toBe('BBB')
    expect(seen).toEqual(['bbb'])
  })
})
