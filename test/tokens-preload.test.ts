import { describe, expect, it } from 'vitest'
import { countTextTokens, preloadEncodings } from '../src/tokens.js'

describe('preloadEncodings', () => {
  it('loads each encoding the models count with once, and skips an unknown name (it fails where it is counted, as before)', () => {
    const loaded = preloadEncodings([{ model: 'gpt-4o-mini' }, { model: 'gpt-4o' }, { model: 'llama-3.1-8b' }, { model: 'x', encoding: 'no_such_base' }])
    expect(loaded.sort()).toEqual(['cl100k_base', 'o200k_base'])
    expect(countTextTokens('hello world', 'o200k_base')).toBe(2)
    expect(() => countTextTokens('hello', 'no_such_base' as 'o200k_base')).toThrow()
  })
})
