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

  it('drops items mapped to undefined, awaits async maps, and keeps the order', async () => {
    const out: number[] = []
    const map = (n: number) => (n % 2 === 0 ? undefined : n % 3 === 0 ? Promise.resolve(n * 10) : n)
    for await (const x of observeStream(numbers(10), { map, onEnd: () => {} })) out.push(x)
    expect(out).toEqual([1, 30, 5, 7, 90])
  })

  it('rejects a pull whose map throws, and reports the stream closed early when the consumer then leaves', async () => {
    const ends: unknown[] = []
    const it = observeStream(numbers(3), {
      map: (n) => {
        if (n === 1) throw new Error('bad item')
        return n
      },
      onEnd: (info) => void ends.push(info)
    })[Symbol.asyncIterator]()
    expect(await it.next()).toEqual({ done: false, value: 0 })
    await expect(it.next()).rejects.toThrow('bad item')
    await it.return!()
    expect(ends).toEqual([{ closedEarly: true }])
  })

  it('reports a source that throws when it is opened', async () => {
    let info: any
    const broken: AsyncIterable<number> = {
      [Symbol.asyncIterator]() {
        throw new Error('cannot open')
      }
    }
    await expect(observeStream(broken, { onEnd: (i) => void (info = i) })[Symbol.asyncIterator]().next()).rejects.toThrow('cannot open')
    expect(info.error.message).toBe('cannot open')
  })
})
