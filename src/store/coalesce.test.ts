import { Writable } from 'node:stream'
import { describe, expect, it } from 'vitest'
import { coalesceWrites, writeInBackground } from './coalesce.js'
import { loopLoad } from './loop-load.js'

/** A socket stand-in that counts the writes (syscalls, for a real socket) its buffered chunks leave in. */
function countingSocket(): { socket: Writable; writes: () => number } {
  let writes = 0
  const socket = new Writable({
    write: (_chunk, _enc, done) => (writes++, done()),
    writev: (_chunks, done) => (writes++, done())
  })
  return { socket, writes: () => writes }
}
const tick = () => new Promise<void>((resolve) => process.nextTick(resolve))
const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

describe('coalesceWrites, auto batching', () => {
  it('on a busy loop sends the commands of one turn in one write at its end, as turn batching does', async () => {
    const { socket, writes } = countingSocket()
    coalesceWrites(socket, 'auto', () => true)
    await turn()
    // several requests' continuations over several ticks of one turn: one write, when the turn ends
    socket.write('a1')
    socket.write('a2')
    await tick()
    socket.write('b')
    await tick()
    socket.write('c')
    await tick()
    expect(writes()).toBe(0)
    await turn()
    expect(writes()).toBe(1)
    socket.write('d')
    await turn()
    expect(writes()).toBe(2)
  })

  it('on a loop with time to spare sends every tick\'s commands at once, as tick batching does', async () => {
    const { socket, writes } = countingSocket()
    coalesceWrites(socket, 'auto', () => false)
    await turn()
    for (let i = 1; i <= 3; i++) {
      socket.write(`x${i}`)
      socket.write(`y${i}`)
      await tick()
      expect(writes()).toBe(i)
    }
  })

  it('follows the load as it changes: a foreground command on a quiet loop takes held ones along at its tick', async () => {
    let busy = true
    const { socket, writes } = countingSocket()
    coalesceWrites(socket, 'auto', () => busy)
    await turn()
    socket.write('held')
    await tick()
    expect(writes()).toBe(0)
    busy = false
    socket.write('now')
    await tick()
    expect(writes()).toBe(1)
    writeInBackground(() => socket.write('ledger'))
    await tick()
    expect(writes()).toBe(1)
    await turn()
    expect(writes()).toBe(2)
  })
})

describe('loopLoad', () => {
  it('reads busy after the loop ran without a break, and idle after it waited', async () => {
    // the spin covers at least 250 of the sample's 250–350 ms, so a threshold of 0.5 reads it busy wherever it falls
    const busy = loopLoad(0.5)
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
    await sleep(250)
    expect(busy()).toBe(false)
    const until = performance.now() + 250
    while (performance.now() < until);
    // the overdue sample runs before this timer
    await sleep(0)
    expect(busy()).toBe(true)
    await sleep(250)
    expect(busy()).toBe(false)
  })
})
