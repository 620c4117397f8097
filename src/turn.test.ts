import { readFile } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { afterAnswers, releasePerTurn } from './turn.js'

/** Lets the microtask queue drain many times over, within the same turn. */
async function microtasks(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await Promise.resolve()
}

const nextImmediate = () => new Promise<void>((r) => setImmediate(r))

describe('releasePerTurn', () => {
  it('hands over the answers ready in one turn together, at its end, and none before', async () => {
    const events: string[] = []
    const fetch = releasePerTurn(async (req: Request) => new Response('', { headers: { 'x-path': new URL(req.url).pathname } }))
    const answers = ['/a', '/b', '/c'].map((path) =>
      fetch(new Request(`http://gateway${path}`), {}).then((res) => void events.push(`answer ${res.headers.get('x-path')}`))
    )
    // a sync fetch handler's answer waits for the turn's end too
    const sync = releasePerTurn(() => new Response('sync'))(new Request('http://gateway/sync'), {})
    void sync.then(() => events.push('answer sync'))
    await microtasks()
    expect(events).toEqual([])
    await Promise.all([...answers, sync])
    // in the order they were ready: the sync handler's first
    expect(events).toEqual(['answer sync', 'answer /a', 'answer /b', 'answer /c'])
  })

  it('releases within the turn: an answer finished in an I/O callback leaves before the timers of the next turn', async () => {
    const events: string[] = []
    const fetch = releasePerTurn(() => new Response('x'))
    await new Promise<void>((done) => {
      // an I/O callback, as an upstream's answer arrives: a timer set here runs in the next turn
      readFile(import.meta.filename, () => {
        setTimeout(() => {
          events.push('timer')
          done()
        }, 0)
        void fetch(new Request('http://gateway/'), {}).then(() => events.push('answer'))
      })
    })
    expect(events).toEqual(['answer', 'timer'])
  })

  it('passes a failed fetch through as it failed', async () => {
    const fetch = releasePerTurn(async () => {
      throw new Error('boom')
    })
    await expect(fetch(new Request('http://gateway/'), {})).rejects.toThrow('boom')
  })
})

describe('afterAnswers', () => {
  it('runs background work after the answers of its turn, even when queued before them', async () => {
    const events: string[] = []
    afterAnswers(() => events.push('write'))
    const fetch = releasePerTurn(async () => new Response('x'))
    const answer = fetch(new Request('http://gateway/'), {}).then(() => events.push('answer'))
    await answer
    // the answer's own continuation ran first; the write follows in a later turn
    expect(events).toEqual(['answer'])
    await nextImmediate()
    await nextImmediate()
    expect(events).toEqual(['answer', 'write'])
  })

  it('runs every queued function once, in order', async () => {
    const ran: number[] = []
    for (let i = 0; i < 5; i++) afterAnswers(() => ran.push(i))
    await nextImmediate()
    await nextImmediate()
    await nextImmediate()
    expect(ran).toEqual([0, 1, 2, 3, 4])
  })
})
