import { describe, expect, it } from 'vitest'
import { createLru } from '../src/lru.js'

describe('createLru', () => {
  it('evicts the least recently used first; get refreshes, peek does not', () => {
    const lru = createLru<string, number>({ max: 3 })
    lru.set('a', 1)
    lru.set('b', 2)
    lru.set('c', 3)
    expect(lru.get('a')).toBe(1) // b is now the oldest
    expect(lru.peek('b')).toBe(2) // still the oldest
    lru.set('d', 4)
    expect(lru.peek('b')).toBeUndefined()
    expect([lru.peek('a'), lru.peek('c'), lru.peek('d')]).toEqual([1, 3, 4])
    expect(lru.size).toBe(3)
  })

  it('bounds the total weight, counts a replaced value once, and evicts as many as it takes', () => {
    const lru = createLru<string, string>({ max: 10, weigh: (k, v) => k.length + v.length })
    lru.set('a', 'xxxx') // 5
    lru.set('b', 'yyyy') // 10
    lru.set('a', 'zz') // replaces: 5 + 3, and a is now the newest
    expect(lru.weight).toBe(8)
    lru.set('c', 'wwwwwww') // 8: over by 6, so b (5) and a (3) go
    expect(lru.peek('a')).toBeUndefined()
    expect(lru.peek('b')).toBeUndefined()
    expect(lru.get('c')).toBe('wwwwwww')
    expect(lru.weight).toBe(8)
  })

  it('keeps order and weight right through deletes and clear, and across many evictions', () => {
    const lru = createLru<number, number>({ max: 100 })
    for (let i = 0; i < 10_000; i++) {
      lru.set(i, i)
      if (i % 7 === 0) lru.delete(i - 3)
      if (i % 11 === 0) lru.get(i - 50)
    }
    expect(lru.size).toBe(100)
    expect(lru.weight).toBe(100)
    // the newest 100 survive, except those deleted on the way (replaced by older refreshed ones)
    expect(lru.peek(9_999)).toBe(9_999)
    expect(lru.delete(9_999)).toBe(true)
    expect(lru.delete(9_999)).toBe(false)
    expect(lru.size).toBe(99)
    lru.clear()
    expect(lru.size).toBe(0)
    expect(lru.weight).toBe(0)
    lru.set(1, 1)
    expect(lru.get(1)).toBe(1)
  })
})
