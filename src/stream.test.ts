import { describe, expect, it } from 'vitest'
import { observeStream } from './stream.js'

async function* numbers(n: number) {
  for (let i = 0; i < n; i++) yield i
}

describe('observeStream', () => {
  it('runs onEnd once when drained, and maps items', async () => {
    const ends: unknown[] = []
    const out: number[] = []
    for await (const x of observeStream(numbers(3), { map: (n) => n * 2, onEnd: (info) => void ends.push(info) })) out.push(x)
    expect(out).toEqual([0, 2, 4])
    expect(ends).toEqual([{ closedEarly: false }])
  })

  it('runs onEnd of every nested wrapper when closed before the first pull', async () => {
    const ends: string[] = []
    const inner = observeStream(numbers(3), { onEnd: () => void ends.push('inner') })
    const outer = observeStream(inner, { onEnd: (i) => void ends.push(`outer:${i.closedEarly}`) })
    await outer[Symbol.asyncIterator]().return!()
    expect(ends).toEqual(['outer:true', 'inner'])
  })

  it('reports a failing source and rethrows', async () => {
    const boom = (async function* () {
      yield 1
      throw new Error('boom')
    })()
    let info: any
    const it = observeStream(boom, { onEnd: (i) => void (info = i) })[Symbol.asyncIterator]()
    await it.next()
    await expect(it.next()).rejects.toThrow('boom')
    expect(info.error.message).toBe('boom')
  })

  it('emits flushed items after the source ends', async () => {
    const out: number[] = []
    for await (const x of observeStream(numbers(2), { flush: () => [9], onEnd: () => {} })) out.push(x)
    expect(out).toEqual([0, 1, 9])
  })
})
