import { once } from 'node:events'
import { request } from 'node:http'
import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono, type Context } from 'hono'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { requestAbort, requestHeader, requestHeaders, requestText } from '../routes/incoming.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { TEAM_A_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'

// routes/incoming.ts reads headers, body and disconnects from Node's request directly: the same answers
// as Hono's Request-based API, including the cases that path handled (chunked bodies, BOM, repeated headers).

let fake: FakeOpenAI
let gw: TestGateway

beforeAll(async () => {
  fake = await startFakeOpenAI()
  gw = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, config: { server: { body_limit_bytes: 64 * 1024 } } })
})
afterAll(async () => {
  await gw.close(0)
  await fake.close()
})

/** POST with node:http, so the test chooses chunked encoding and raw header lists. */
function post(pieces: (string | Buffer)[], headers: Record<string, string | string[]>, chunked: boolean, path = '/v1/chat/completions'): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const url = new URL(`${gw.url}${path}`)
    const total = pieces.reduce((n, p) => n + Buffer.byteLength(p), 0)
    const req = request(
      { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: chunked ? headers : { ...headers, 'content-length': String(total) } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (b: Buffer) => chunks.push(b))
        res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }))
      }
    )
    req.on('error', reject)
    for (const p of pieces) req.write(p)
    req.end()
  })
}

const chat = (content: string) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] })
const base = { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json' }

describe('requests read from Node directly', () => {
  it('a chunked body within the limit is read whole', async () => {
    const body = chat('chunked hello')
    const res = await post([body.slice(0, 10), body.slice(10, 30), body.slice(30)], base, true)
    expect(res.status).toBe(200)
    expect(res.body.choices[0].message.content).toBe('You said: chunked hello')
  })

  it('a chunked body over the limit is cut with 413 (no Content-Length to trust)', async () => {
    const res = await post([chat('x'.repeat(100 * 1024))], base, true)
    expect(res.status).toBe(413)
    expect(res.body.error.code).toBe('request_too_large')
  })

  it('a Content-Length over the limit is refused with 413', async () => {
    const res = await post([chat('x'.repeat(100 * 1024))], base, false)
    expect(res.status).toBe(413)
  })

  it('a percent-encoded path that routes to /v1 is bounded too (the bound reads the path as Hono routes it)', async () => {
    const small = await post([chat('encoded')], base, false, '/%76%31/chat/completions')
    expect(small.status).toBe(200)
    expect(small.body.choices[0].message.content).toBe('You said: encoded')
    const big = await post([chat('x'.repeat(100 * 1024))], base, false, '/%76%31/chat/completions')
    expect(big.status).toBe(413)
    expect(big.body.error.code).toBe('request_too_large')
  })

  it('a UTF-8 byte order mark is dropped, as Request.text() does; multi-byte characters split across chunks survive', async () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(chat('héllo wörld €'))])
    const cut = body.indexOf(Buffer.from('€')) + 1
    const res = await post([body.subarray(0, cut), body.subarray(cut)], base, false)
    expect(res.status).toBe(200)
    expect(res.body.choices[0].message.content).toBe('You said: héllo wörld €')
  })

  it('a body still arriving after the headers is waited for and read whole, over several reads', async () => {
    const body = Buffer.from(chat('wörld € later'))
    const cut = body.indexOf(Buffer.from('€')) + 1
    const socket = connect(Number(new URL(gw.url).port), '127.0.0.1')
    await once(socket, 'connect')
    let answer = ''
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => (answer += d))
    const head = `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: ${base.authorization}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`
    socket.write(Buffer.concat([Buffer.from(head), body.subarray(0, 10)]))
    for (const piece of [body.subarray(10, cut), body.subarray(cut)]) {
      await new Promise((r) => setTimeout(r, 30))
      socket.write(piece)
    }
    await once(socket, 'close')
    expect(answer).toMatch(/^HTTP\/1.1 200 /)
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).choices[0].message.content).toBe('You said: wörld € later')
  })

  it('repeated headers are joined with ", " (a second content-type spoils the first)', async () => {
    const res = await post([chat('hi')], { authorization: base.authorization, 'content-type': ['text/plain', 'application/json'] }, false)
    expect(res.status).toBe(415)
    expect(res.body.error.message).toContain('text/plain, application/json')
  })

  it('an empty body is invalid JSON (400), not a hang', async () => {
    const res = await post([], base, false)
    expect(res.status).toBe(400)
    expect(res.body.error.code).toBe('invalid_json')
  })
})

describe('a Request something built before the route', () => {
  /** An app whose middleware builds node-server's Request (reading its signal), as a third-party middleware may. */
  async function serveBuiltFirst(route: (c: Context) => Promise<Response>): Promise<{ url: string; close: () => Promise<void> }> {
    const app = new Hono()
    app.use('*', async (c, next) => {
      void c.req.raw.signal
      await next()
    })
    app.post('/x', route)
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
    await new Promise<void>((r) => server.once('listening', () => r()))
    const { port } = server.address() as AddressInfo
    return { url: `http://127.0.0.1:${port}/x`, close: () => new Promise<void>((r) => server.close(() => r())) }
  }

  it('gives the same headers and body as Hono, the body through the Request that now owns it', async () => {
    const app = await serveBuiltFirst(async (c) => {
      const headers = requestHeaders(c)
      const type = requestHeader(c, 'x-twice')
      const text = await requestText(c)
      // read through the built Request (its body stream owns the socket now), not from Node beside it
      return c.json({ headers, hono: c.req.header(), type, text, readByRequest: c.req.raw.bodyUsed })
    })
    try {
      const res = await new Promise<{ status: number; body: any }>((resolve, reject) => {
        const url = new URL(app.url)
        const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'x-twice': ['a', 'b'], 'content-type': 'text/plain', 'transfer-encoding': 'chunked' } }, (r) => {
          const chunks: Buffer[] = []
          r.on('data', (b: Buffer) => chunks.push(b))
          r.on('end', () => resolve({ status: r.statusCode!, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) }))
        })
        req.on('error', reject)
        req.write('first half, ')
        setTimeout(() => req.end('second half'), 20)
      })
      expect(res.status).toBe(200)
      expect(res.body.text).toBe('first half, second half')
      expect(res.body.readByRequest).toBe(true)
      expect(res.body.type).toBe('a, b')
      expect(res.body.headers).toEqual(res.body.hono)
    } finally {
      await app.close()
    }
  })

  it('still hears the client leave', async () => {
    let aborted: (reason: unknown) => void
    const reason = new Promise<unknown>((r) => (aborted = r))
    const app = await serveBuiltFirst(async (c) => {
      const { abort } = requestAbort(c)
      expect(abort).toBeDefined()
      abort!.onAbort(() => aborted(abort!.reason))
      await reason
      return c.text('late')
    })
    try {
      const url = new URL(app.url)
      const req = request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', headers: { 'content-length': '2' } })
      req.on('error', () => {})
      req.end('{}')
      setTimeout(() => req.destroy(), 50)
      expect(await reason).toBe('Client connection prematurely closed.')
    } finally {
      await app.close()
    }
  })
})
