import { readFile } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { atTurnEnd, turnBusy, turnEnd } from './turn.js'

/** Many turns of the microtask queue, as an answer's continuations take on their way to the socket. */
async function microtasks(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve()
}

describe('atTurnEnd', () => {
  it('runs after the microtasks of the I/O callback that queued it, and before the next turn\'s timers', async () => {
    const events: string[] = []
    await new Promise<void>((done) => {
      // an I/O callback, as an upstream's answer arrives: the cache write is queued before the answer is written
      readFile(import.meta.filename, () => {
        atTurnEnd(() => events.push('write'))
        setTimeout(() => {
          events.push('timer')
          done()
        }, 0)
        void microtasks().then(() => events.push('answer'))
      })
    })
    expect(events).toEqual(['answer', 'write', 'timer'])
  })

  it('runs everything queued in a turn once, in order, from one immediate', async () => {
    const ran: number[] = []
    const immediates: number[] = []
    const real = globalThis.setImmediate
    let count = 0
    globalThis.setImmediate = ((fn: () => void) => {
      count++
      return real(fn)
    }) as typeof setImmediate
    try {
      for (let i = 0; i < 5; i++) atTurnEnd(() => ran.push(i))
      immediates.push(count)
    } finally {
      globalThis.setImmediate = real
    }
    await new Promise<void>((r) => real(r))
    expect(ran).toEqual([0, 1, 2, 3, 4])
    expect(immediates).toEqual([1])
    // a later turn gets its own run
    atTurnEnd(() => ran.push(5))
    await new Promise<void>((r) => real(r))
    expect(ran).toEqual([0, 1, 2, 3, 4, 5])
  })

  it('turnEnd: one promise for the turn\'s callers, resolved after the work queued before it; a new one next turn', async () => {
    const events: string[] = []
    expect(turnBusy()).toBe(false)
    atTurnEnd(() => events.push('write'))
    expect(turnBusy()).toBe(true)
    const a = turnEnd()
    const b = turnEnd()
    expect(a).toBe(b)
    await a.then(() => events.push('lookup'))
    expect(events).toEqual(['write', 'lookup'])
    expect(turnBusy()).toBe(false)
    const c = turnEnd()
    expect(c).not.toBe(a)
    await c
  })
})
