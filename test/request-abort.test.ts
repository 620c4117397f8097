import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { abortFromSignal, createRequestAbort } from '../src/abort.js'
import { TEAM_A_KEY } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'

describe('createRequestAbort', () => {
  it('calls each listener once, with the reason readable, and not after it was taken off', () => {
    const abort = createRequestAbort()
    const heard: unknown[] = []
    abort.onAbort(() => heard.push(['a', abort.reason]))
    const off = abort.onAbort(() => heard.push('b'))
    abort.onAbort(() => heard.push(['c', abort.aborted]))
    off()
    expect(abort.aborted).toBe(false)
    abort.abort('client left')
    abort.abort('again')
    expect(heard).toEqual([['a', 'client left'], ['c', true]])
    expect(abort.reason).toBe('client left')
    // too late: read `aborted` first
    abort.onAbort(() => heard.push('late'))()
    expect(heard).toHaveLength(2)
  })

  it('gives an AbortError as the reason when none is given, as AbortController does', () => {
    const abort = createRequestAbort()
    abort.abort()
    expect(abort.reason).toBeInstanceOf(DOMException)
    expect((abort.reason as DOMException).name).toBe('AbortError')
  })

  it('makes a real AbortSignal on first read that follows the abort, before or after it', () => {
    const early = createRequestAbort()
    const signal = early.signal
    expect(signal).toBeInstanceOf(AbortSignal)
    expect(early.signal).toBe(signal)
    const onSignal = vi.fn()
    signal.addEventListener('abort', onSignal)
    early.abort('shutting down')
    expect(onSignal).toHaveBeenCalledOnce()
    expect(signal.reason).toBe('shutting down')

    const late = createRequestAbort()
    late.abort('gone')
    expect(late.signal.aborted).toBe(true)
    expect(late.signal.reason).toBe('gone')
  })
})

describe('abortFromSignal', () => {
  it('listens through the AbortSignal it wraps', () => {
    const controller = new AbortController()
    const abort = abortFromSignal(controller.signal)
    const heard = vi.fn()
    const off = abort.onAbort(heard)
    const kept = vi.fn()
    abort.onAbort(kept)
    off()
    controller.abort('bye')
    expect(heard).not.toHaveBeenCalled()
    expect(kept).toHaveBeenCalledOnce()
    expect(abort.aborted).toBe(true)
    expect(abort.reason).toBe('bye')
    expect(abort.signal).toBe(controller.signal)
  })
})

describe('a cache miss through the gateway makes no AbortSignal', () => {
  let stack: Stack
  beforeAll(async () => {
    // both cache layers on (the builtin embedder), so the lookup runs before the upstream call
    stack = await startStack({ policies: { a: { cache: { exact: { enabled: true }, semantic: { enabled: true } } } } })
  })
  afterAll(() => stack?.close())

  it('non-streamed and streamed (that a client who leaves still stops the upstream call: test/faults/client.test.ts)', async () => {
    const made = vi.fn()
    const Original = globalThis.AbortController
    vi.stubGlobal(
      'AbortController',
      class extends Original {
        constructor() {
          super()
          made()
        }
      }
    )
    try {
      for (const stream of [false, true]) {
        const res = await request(`${stack.gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt-4o-mini', stream, messages: [{ role: 'user', content: `a question asked once, stream ${stream}` }] })
        })
        const text = await res.body.text()
        expect(res.statusCode, text).toBe(200)
        expect(res.headers['x-sluice-cache']).toBe('miss')
        expect(text).toContain(stream ? '[DONE]' : 'You said')
      }
      expect(made).not.toHaveBeenCalled()
    } finally {
      vi.unstubAllGlobals()
    }
  })
})
