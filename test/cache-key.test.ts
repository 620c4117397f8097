import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { canonicalJson, exactCacheKey, semanticQuery, TEXT_KEY_MAX_CHARS } from '../src/cache/key.js'
import { seededRandom } from '../src/random.js'

/** The form keys were built with before the one-walk writer: every key it made must stay the same. */
function replacerCanonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const sorted: Record<string, unknown> = Object.create(null)
      for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k]
      return sorted
    }
    return v
  })
}

/** A seeded random JSON-ish value: what a parsed request body can hold, plus undefined, holes and odd numbers. */
function randomValue(rand: () => number, depth: number): unknown {
  const pick = Math.floor(rand() * (depth > 3 ? 7 : 10))
  const strings = ['', 'a', 'hello world', 'é ü 中文', 'quote " back \\ slash', 'nl\n\ttab', '\u0000\u001f', '\ud800 lone', '😀', '__proto__', 'del \u007f', 'low \udc00 lone', 'ends high \ud83d', 'line \u2028 sep', '\u0020 space']
  const numbers = [0, -0, 1, -1.5, 1e21, 1e-7, 123456789012345680000, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity]
  switch (pick) {
    case 0:
      return null
    case 1:
      return rand() < 0.5
    case 2:
      return numbers[Math.floor(rand() * numbers.length)]
    case 3:
      return strings[Math.floor(rand() * strings.length)]
    case 4:
      return undefined
    case 5:
      return () => 1
    case 6:
      return strings[Math.floor(rand() * strings.length)]! + String(Math.floor(rand() * 100))
    case 7:
    case 8: {
      const arr: unknown[] = []
      const n = Math.floor(rand() * 5)
      for (let i = 0; i < n; i++) arr.push(randomValue(rand, depth + 1))
      if (rand() < 0.1) arr.length += 2 // holes
      return arr
    }
    default: {
      const obj: Record<string, unknown> = rand() < 0.2 ? Object.create(null) : {}
      const n = Math.floor(rand() * 6)
      const names = ['model', 'messages', 'b', 'a', 'Z', '10', '2', '0', '01', '4294967294', '4294967295', 'é', '__proto__', 'tool_calls', 'x y', '']
      for (let i = 0; i < n; i++) {
        const k = names[Math.floor(rand() * names.length)]!
        Object.defineProperty(obj, k, { value: randomValue(rand, depth + 1), enumerable: true, configurable: true, writable: true })
      }
      return obj
    }
  }
}

describe('canonical JSON', () => {
  it('writes byte for byte what JSON.stringify with a key-sorting replacer writes', () => {
    const rand = seededRandom(7)
    for (let i = 0; i < 5000; i++) {
      const value = { root: randomValue(rand, 0), other: randomValue(rand, 0) }
      expect(canonicalJson(value)).toBe(replacerCanonicalJson(value))
    }
  })

  it('sorts long key lists as sort() does, array indices first', () => {
    const rand = seededRandom(11)
    const names = ['b', 'a', 'Z', 'é', '', 'x y', '10', '2', '0', '01', 'model', 'messages', 'tool_calls', 'aa', 'a b', 'ß', '😀', '_']
    const sizes = { short: 0, long: 0 }
    for (let i = 0; i < 200; i++) {
      const obj: Record<string, unknown> = {}
      const n = 4 + Math.floor(rand() * 30)
      for (let k = 0; k < n; k++) obj[names[Math.floor(rand() * names.length)]! + (rand() < 0.5 ? String(Math.floor(rand() * 50)) : '')] = k
      sizes[Object.keys(obj).length > 16 ? 'long' : 'short']++
      expect(canonicalJson({ obj, list: [obj] })).toBe(replacerCanonicalJson({ obj, list: [obj] }))
    }
    // both ways of sorting ran (in-place up to 16 keys, sort() past that)
    expect(sizes.short).toBeGreaterThan(20)
    expect(sizes.long).toBeGreaterThan(20)
  })

  it('sorts keys at every level and keeps a parsed "__proto__" field as data', () => {
    const parsed = JSON.parse('{"z":1,"__proto__":{"b":2,"a":[3,{"d":4,"c":5}]},"m":null}')
    expect(canonicalJson(parsed)).toBe('{"__proto__":{"a":[3,{"c":5,"d":4}],"b":2},"m":null,"z":1}')
    expect(canonicalJson({ a: undefined, b: [undefined, () => 1], c: NaN, d: new Date(0) })).toBe('{"b":[null,null],"c":null,"d":"1970-01-01T00:00:00.000Z"}')
  })

  it('keeps the exact key and the semantic scope of a request as they were', () => {
    // pinned: a change here silently empties every deployed cache on upgrade
    const request = { ...TERSE_REQUEST, stream: true, user: 'u-1' }
    expect(exactCacheKey({ tenant: 'team:a', alias: 'fast', route: 'r:1', request })).toBe(
      'cache:x:' + sha256hex(replacerCanonicalJson({ v: 1, tenant: 'team:a', alias: 'fast', route: 'r:1', req: { temperature: 0, messages: request.messages } }))
    )
    expect(semanticQuery({ tenant: 'team:a', alias: 'fast', route: 'r:1', request })?.scope).toBe(
      'sem:' +
        sha256hex(
          replacerCanonicalJson({ v: 1, tenant: 'team:a', alias: 'fast', route: 'r:1', req: { temperature: 0 }, context: [request.messages[0]], last: { role: 'user' } })
        )
    )
  })
})

describe('in-process keys', () => {
  const request = TERSE_REQUEST

  it('are the canonical texts the shared forms hash, up to TEXT_KEY_MAX_CHARS, in their own namespaces', () => {
    const input = { tenant: 'team:a', alias: 'fast', route: 'r:1', request, inProcess: true }
    const exactText = replacerCanonicalJson({ v: 1, tenant: 'team:a', alias: 'fast', route: 'r:1', req: { temperature: 0, messages: request.messages } })
    expect(exactCacheKey(input)).toBe('cache:t:' + exactText)
    const scopeText = replacerCanonicalJson({ v: 1, tenant: 'team:a', alias: 'fast', route: 'r:1', req: { temperature: 0 }, context: [request.messages[0]], last: { role: 'user' } })
    expect(semanticQuery(input)).toEqual({ scope: 'semt:' + scopeText, text: 'What is 2 + 2?' })
    // another team, another context: other keys
    expect(semanticQuery({ ...input, tenant: 'team:b' })?.scope).not.toBe('semt:' + scopeText)
    const otherSystem = { ...request, messages: [{ role: 'system' as const, content: 'You are verbose.' }, request.messages[1]!] }
    expect(semanticQuery({ ...input, request: otherSystem })?.scope).not.toBe('semt:' + scopeText)
  })

  it('fall back to the hash past TEXT_KEY_MAX_CHARS', () => {
    const long = { ...request, messages: [{ role: 'system' as const, content: 'x'.repeat(TEXT_KEY_MAX_CHARS) }, request.messages[1]!] }
    const input = { tenant: 'team:a', alias: 'fast', route: 'r:1', request: long, inProcess: true }
    expect(exactCacheKey(input)).toMatch(/^cache:x:[0-9a-f]{64}$/)
    expect(semanticQuery(input)?.scope).toMatch(/^sem:[0-9a-f]{64}$/)
    expect(semanticQuery(input)?.scope).toBe(semanticQuery({ ...input, inProcess: false })?.scope)
  })
})

/** A small chat request with a system prompt: one earlier turn for the semantic scope. */
const TERSE_REQUEST = {
  model: 'fast',
  temperature: 0,
  messages: [
    { role: 'system' as const, content: 'You are terse.' },
    { role: 'user' as const, content: 'What is 2 + 2?' }
  ]
}

function sha256hex(text: string): string {
  return createHash('sha256').update(text).digest('hex')
}

