import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { withArrival } from './arrival.js'
import { jsonAnswer, requestIdOf, stampRequestId } from './request-id.js'
import { alreadySentAnswer } from './sse.js'

// withArrival through `app.request`-style calls (no Node request): the id, the bound and the answer's header.
// Over real sockets (drain, chunked bodies, keep-alive) it is tested in test/incoming.test.ts and test/keep-alive.test.ts.

function appWithArrival() {
  const app = new Hono()
  app.post('/v1/echo', async (c) => c.json({ id: requestIdOf(c), text: await c.req.text() }))
  app.get('/v1/own', (c) => jsonAnswer(c, { ok: true }, 200, { 'x-own': '1' }))
  app.get('/open', (c) => c.text(String(requestIdOf(c))))
  const fetch = withArrival(app.fetch, {
    maxBodyBytes: 16,
    bounded: (path) => path.startsWith('/v1/'),
    tooLarge: (path) => ({ status: 413, body: { error: { message: `too large for ${path}`, type: 'invalid_request_error', code: 'request_too_large' } } })
  })
  return (path: string, init?: RequestInit) => Promise.resolve(fetch(new Request(`http://localhost${path}`, init)))
}

describe('withArrival', () => {
  it('gives each request its own id, seen by the route and sent as x-sluice-request-id', async () => {
    const call = appWithArrival()
    const a = await call('/v1/echo', { method: 'POST', body: 'hi' })
    const b = await call('/v1/echo', { method: 'POST', body: 'hi' })
    const bodyA = await a.json()
    expect(bodyA.text).toBe('hi')
    expect(bodyA.id).toMatch(/^[0-9a-f-]{36}$/)
    expect(a.headers.get('x-sluice-request-id')).toBe(bodyA.id)
    expect(b.headers.get('x-sluice-request-id')).not.toBe(bodyA.id)
  })

  it('stamps answers of unknown routes, and leaves a jsonAnswer (which carries the id) as it is', async () => {
    const call = appWithArrival()
    const missing = await call('/nowhere')
    expect(missing.status).toBe(404)
    expect(missing.headers.get('x-sluice-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const own = await call('/v1/own')
    expect(own.headers.get('x-own')).toBe('1')
    expect(own.headers.get('x-sluice-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('refuses a declared or a chunked body over the bound on bounded paths only, before the route runs', async () => {
    const call = appWithArrival()
    const declared = await call('/v1/echo', { method: 'POST', body: 'x'.repeat(17) })
    expect(declared.status).toBe(413)
    expect((await declared.json()).error.message).toBe('too large for /v1/echo')
    expect(declared.headers.get('x-sluice-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const stream = (n: number) => new ReadableStream({ start: (c) => { for (let i = 0; i < n; i++) c.enqueue(new TextEncoder().encode('abcd')); c.close() } })
    const chunked = await call('/v1/echo', { method: 'POST', body: stream(5), duplex: 'half' } as RequestInit)
    expect(chunked.status).toBe(413)
    const fits = await call('/v1/echo', { method: 'POST', body: stream(4), duplex: 'half' } as RequestInit)
    expect(fits.status).toBe(200)
    expect((await fits.json()).text).toBe('abcd'.repeat(4))
    const open = await call('/open')
    expect(open.status).toBe(200)
  })

  it('answers a body that fails mid-read with an OpenAI-style 400, not a hang', async () => {
    const call = appWithArrival()
    const failing = new ReadableStream({
      start: (c) => {
        c.enqueue(new TextEncoder().encode('abcd'))
        c.error(new Error('socket closed'))
      }
    })
    const res = await call('/v1/echo', { method: 'POST', body: failing, duplex: 'half' } as RequestInit)
    expect(res.status).toBe(400)
    expect((await res.json()).error).toMatchObject({ type: 'invalid_request_error', code: 'body_unreadable' })
    expect(res.headers.get('x-sluice-request-id')).toMatch(/^[0-9a-f-]{36}$/)
  })

  it('leaves the answer of a route that wrote its own response alone: one marker per process, never stamped', () => {
    const marker = alreadySentAnswer()
    expect(alreadySentAnswer()).toBe(marker)
    expect(stampRequestId(marker, 'an-id')).toBe(marker)
    expect(marker.headers.get('x-sluice-request-id')).toBeNull()
    expect(marker.headers.get('x-hono-already-sent')).toBe('true')
  })
})
