/**
 * How a streamed answer leaves the gateway (routes/sse.ts `sseResponse`): through node-server it is written to
 * Node's response directly, the status line and headers in the same write as the first event; a client that
 * reads slowly still gets every event in order (the writer waits for `drain`); without a Node response
 * (`app.request`) the same events come from a web stream.
 */
import type { ServerResponse } from 'node:http'
import { connect, Socket, type AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { sseResponse } from '../routes/sse.js'
import { loadConfig } from '../src/config/load.js'
import { createApp } from '../src/server.js'
import { TEAM_A_KEY, useFakeOpenAIGateway } from './helpers/gateway.js'

const stack = useFakeOpenAIGateway()


const streamBody = JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'stream to me' }] })

/** A raw HTTP/1.1 request on a socket, so the test sees the bytes as they arrive. */
function rawStreamRequest(port: number): Socket {
  const socket = connect(port, '127.0.0.1')
  socket.write(
    'POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n' +
      `authorization: Bearer ${TEAM_A_KEY}\r\ncontent-length: ${Buffer.byteLength(streamBody)}\r\nconnection: close\r\n\r\n${streamBody}`
  )
  return socket
}

/** Events of a chunked SSE body, the chunk-size lines dropped. */
function events(raw: string): string[] {
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4)
  return body
    .split(/\r\n[0-9a-f]+\r\n|^[0-9a-f]+\r\n/)
    .join('')
    .split('\n\n')
    .filter((e) => e.startsWith('data: '))
}

/**
 * What sockets accepted by `record` write, call by call, until `restore()`. Node's Socket sends both write() and
 * writev() through _writeGeneric.
 */
function recordSocketWrites(record: (socket: Socket) => boolean): { writes: string[]; restore: () => void } {
  const proto = Socket.prototype as unknown as { _writeGeneric: (writev: boolean, data: unknown, ...rest: unknown[]) => unknown }
  const original = proto._writeGeneric
  const writes: string[] = []
  proto._writeGeneric = function (this: Socket, writev: boolean, data: unknown, ...rest: unknown[]) {
    if (record(this)) {
      const parts = writev ? (data as { chunk: Buffer | string }[]).map((d) => d.chunk) : [data as Buffer | string]
      writes.push(parts.map((p) => (typeof p === 'string' ? p : Buffer.from(p).toString('utf8'))).join(''))
    }
    return original.call(this, writev, data, ...rest)
  }
  return { writes, restore: () => void (proto._writeGeneric = original) }
}

describe('streamed answers through node-server', () => {
  it('send the status line, the headers (request id included, once) and the first event in one write', async () => {
    // the next event comes 200 ms later: the first write holding an event holds only the first one
    stack.fake.script = () => ({ content: 'one two three', chunkDelayMs: 200 })
    // What the gateway's sockets write, call by call (the test client reads in this same process, after the
    // gateway's writes of a turn, so its reads cannot tell one write from two).
    const { writes, restore } = recordSocketWrites((socket) => socket.localPort === stack.gw.port)
    let first: string
    try {
      const socket = rawStreamRequest(stack.gw.port)
      await new Promise<void>((resolve, reject) => {
        socket.on('data', () => writes.some((w) => w.includes('data: ')) && resolve())
        socket.once('error', reject)
      })
      socket.destroy()
      first = writes[0]!
    } finally {
      restore()
    }
    expect(first.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true)
    expect(first).toContain('\r\n\r\n')
    expect(first).toContain('data: ')
    const head = first.slice(0, first.indexOf('\r\n\r\n')).toLowerCase()
    expect(head).toContain('content-type: text/event-stream')
    expect(head.match(/x-sluice-request-id: /g)).toHaveLength(1)
    expect(head).toContain('transfer-encoding: chunked')
    // the role chunk came with the headers
    const [event] = events(first)
    expect(JSON.parse(event!.slice(6)).choices[0].delta.role).toBe('assistant')
  })

  it('leave as they arrive: events that come apart are written apart, events that come together in one write', async () => {
    // five words 80 ms apart: each must reach the client before the next leaves the upstream
    stack.fake.script = () => ({ chunks: ['one ', 'two ', 'three ', 'four ', 'five'], chunkDelayMs: 80 })
    const socket = rawStreamRequest(stack.gw.port)
    const arrivals: { at: number; text: string }[] = []
    socket.on('data', (b: Buffer) => arrivals.push({ at: performance.now(), text: b.toString('utf8') }))
    await new Promise((resolve, reject) => {
      socket.once('end', resolve)
      socket.once('error', reject)
    })
    const seen = (word: string) => arrivals.find((a) => a.text.includes(`"content":"${word}`))!.at
    const gaps = ['two', 'three', 'four', 'five'].map((w, i) => seen(w) - seen(['one', 'two', 'three', 'four'][i]!))
    for (const gap of gaps) expect(gap).toBeGreaterThan(40)
    // and a burst (every event at once) leaves in a handful of writes, not one per event
    stack.fake.script = () => ({ chunks: Array.from({ length: 200 }, (_, i) => `w${i} `) })
    const burst = rawStreamRequest(stack.gw.port)
    let reads = 0
    const body: Buffer[] = []
    burst.on('data', (b: Buffer) => (reads++, body.push(b)))
    await new Promise((resolve, reject) => {
      burst.once('end', resolve)
      burst.once('error', reject)
    })
    expect(events(Buffer.concat(body).toString('utf8')).length).toBeGreaterThan(200)
    expect(reads).toBeLessThan(20)
  })

  it('deliver every event in order to a client that stops reading for a while (the writer waits for drain)', async () => {
    // about 6 MB of events, more than the loopback socket buffers hold while the client is paused
    const pieces = Array.from({ length: 3000 }, (_, i) => `${String(i).padStart(5, '0')}:${'x'.repeat(2000)} `)
    stack.fake.script = () => ({ chunks: pieces })
    const socket = rawStreamRequest(stack.gw.port)
    const received: Buffer[] = []
    socket.on('data', (b: Buffer) => received.push(b))
    socket.pause()
    await new Promise((r) => setTimeout(r, 300))
    socket.resume()
    await new Promise((resolve, reject) => {
      socket.once('end', resolve)
      socket.once('error', reject)
    })
    const all = events(Buffer.concat(received).toString('utf8'))
    expect(all.at(-1)).toBe('data: [DONE]')
    const content = all
      .slice(0, -1)
      .map((e) => JSON.parse(e.slice(6)).choices[0]?.delta?.content ?? '')
      .join('')
    expect(content).toBe(pieces.join(''))
  }, 30_000)
})

describe('streamed answers without a Node response (app.request)', () => {
  it('come from a web stream with the same events', async () => {
    stack.fake.script = () => ({ content: 'alpha beta' })
    const { app, gateway } = await createApp(await loadConfig(stack.gw.file, {}))
    try {
      const res = await app.request('/v1/chat/completions', {
        method: 'POST',
        headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json' },
        body: streamBody
      })
      expect(res.status).toBe(200)
      expect(res.headers.get('content-type')).toContain('text/event-stream')
      expect(res.headers.get('x-sluice-request-id')).toBeTruthy()
      const text = await res.text()
      const parts = text.split('\n\n').filter(Boolean)
      expect(parts.at(-1)).toBe('data: [DONE]')
      const content = parts
        .slice(0, -1)
        .map((e) => JSON.parse(e.slice(6)).choices[0]?.delta?.content ?? '')
        .join('')
      expect(content).toBe('alpha beta')
    } finally {
      await gateway.close(0)
    }
  })
})

describe('sseResponse: when the first event leaves', () => {
  /** An app whose one route streams `source`, served by node-server; each socket write recorded, call by call. */
  async function serveStream(source: (socket: Socket) => AsyncIterable<string>) {
    const app = new Hono<{ Bindings: { outgoing: ServerResponse } }>()
    app.get('/events', (c) =>
      sseResponse(c, source(c.env.outgoing.socket as Socket), { render: (e) => `data: ${e}\n\n`, end: () => 'data: [DONE]\n\n', renderError: () => 'data: error\n\n' }, { 'content-type': 'text/event-stream' })
    )
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' })
    await new Promise<void>((resolve) => server.once('listening', () => resolve()))
    return { server, port: (server.address() as AddressInfo).port }
  }

  it('the head and first event are written at once; events that arrive together still share one write', async () => {
    let corkedAtSecondPull: number | undefined
    let writtenAtSecondPull = 0
    let gatewaySocket: Socket | undefined
    const { writes, restore } = recordSocketWrites((socket) => socket === gatewaySocket)
    const { server, port } = await serveStream(async function* (socket) {
      gatewaySocket = socket
      yield 'one'
      // pulled right after the first event was written, before Node's next tick
      corkedAtSecondPull = socket.writableCorked
      writtenAtSecondPull = writes.length
      await new Promise((r) => setTimeout(r, 20))
      // two events at once, and the end: Node's per-tick batching joins them
      yield 'two'
      yield 'three'
    })
    try {
      const res = await fetch(`http://127.0.0.1:${port}/events`)
      expect(await res.text()).toBe('data: one\n\ndata: two\n\ndata: three\n\ndata: [DONE]\n\n')
      // Node corks a response's socket at its first write until the next tick; the first event does not wait for it
      expect(corkedAtSecondPull).toBe(0)
      expect(writtenAtSecondPull).toBe(1)
      expect(writes[0]).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\n[0-9a-f]+\r\ndata: one\n\n/)
      expect(writes).toHaveLength(2)
      expect(writes[1]).toContain('data: two\n\n')
      expect(writes[1]).toContain('data: three\n\n')
      expect(writes[1]).toContain('data: [DONE]\n\n')
    } finally {
      restore()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  })
})
