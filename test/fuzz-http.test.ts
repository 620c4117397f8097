/**
 * Hostile input below the JSON layer, over raw sockets where fetch would refuse to send it: header
 * injection, oversize headers, slow headers and slow bodies (slowloris), non-JSON content types, path
 * traversal, and a prompt built to make token counting slow. The gateway answers or cuts each one and keeps
 * serving everyone else.
 */
import { connect, type Socket } from 'node:net'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_KEY, TEAM_A_KEY, type TestGateway } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'

let stack: Stack
let gw: TestGateway

beforeAll(async () => {
  ;({ gw } = stack = await startStack({
    // team a has a budget, so admission counts every prompt's tokens (tiktoken) before the call
    policies: { a: { budgets: [{ scope: 'team', limit_usd: 1_000_000 }] }, b: { models: ['gpt-4o'] } },
    config: { server: { port: 0, host: '127.0.0.1', shutdown_grace_ms: 1000, request_timeout_ms: 1500, body_limit_bytes: 4 * 1024 * 1024 } }
  }))
})
afterAll(() => stack?.close())

/** Write raw bytes to the gateway and collect what it answers until it closes (bounded). */
function raw(payload: string | Buffer, opts: { timeoutMs?: number } = {}): Promise<{ text: string; closed: boolean; ms: number }> {
  return new Promise((resolve) => {
    const started = performance.now()
    const socket = connect(gw.port, '127.0.0.1')
    let text = ''
    const done = (closed: boolean) => {
      clearTimeout(timer)
      socket.destroy()
      resolve({ text, closed, ms: performance.now() - started })
    }
    const timer = setTimeout(() => done(false), opts.timeoutMs ?? 5000)
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => (text += d))
    socket.on('close', () => done(true))
    socket.on('error', () => done(true))
    socket.write(payload)
  })
}

const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0)

async function stillServing() {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'ping' }] }),
    signal: AbortSignal.timeout(3000)
  })
  expect(res.status).toBe(200)
}

const chatBody = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
const request = (headers: string, body = chatBody) =>
  `POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${headers}\r\n${body}`

describe('header injection', () => {
  it('a bare LF or CR inside a header value is refused with 400 by the HTTP parser', async () => {
    for (const inj of [`Authorization: Bearer ${TEAM_A_KEY}\r\nX-Sluice-Session: a\rInjected: yes\r\n`, `Authorization: Bearer ${TEAM_A_KEY}\r\nX-Sluice-Session: a\nSet-Cookie: pwned=1\r\n`]) {
      const r = await raw(request(inj))
      expect(statusOf(r.text)).toBe(400)
      expect(r.text).not.toMatch(/pwned|Injected/)
    }
    await stillServing()
  })

  it('attribution headers carrying encoded CR/LF are refused (400 invalid_header), never reflected', async () => {
    const evil = 'sess%0d%0aSet-Cookie:%20pwned=1'
    for (const name of ['X-Sluice-Session', 'X-Sluice-Agent']) {
      const r = await raw(request(`Authorization: Bearer ${TEAM_A_KEY}\r\n${name}: ${evil}\r\nConnection: close\r\n`))
      expect(statusOf(r.text)).toBe(400)
      const [head, body] = r.text.split('\r\n\r\n')
      expect(head).not.toMatch(/set-cookie/i)
      expect(JSON.parse(body!).error).toMatchObject({ code: 'invalid_header', param: name.toLowerCase() })
    }
  })

  it('duplicate Authorization headers and an x-api-key of another team do not mix identities', async () => {
    const { TEAM_B_KEY } = await import('./helpers/gateway.js')
    // team b may only use gpt-4o: if b's key won, this request would be a 404
    const r = await raw(request(`Authorization: Bearer ${TEAM_A_KEY}\r\nX-Api-Key: ${TEAM_B_KEY}\r\nConnection: close\r\n`))
    expect(statusOf(r.text)).toBe(200)
    const dup = await raw(request(`Authorization: Bearer ${TEAM_A_KEY}\r\nAuthorization: Bearer ${TEAM_B_KEY}\r\nConnection: close\r\n`))
    // node joins duplicate Authorization headers with ", ": no valid key, a 401
    expect(statusOf(dup.text)).toBe(401)
  })
})

describe('oversize headers', () => {
  it('headers beyond 16 KiB get 431 and the connection closes', async () => {
    const r = await raw(request(`Authorization: Bearer ${TEAM_A_KEY}\r\nX-Big: ${'a'.repeat(20_000)}\r\n`))
    expect(statusOf(r.text)).toBe(431)
    expect(r.closed).toBe(true)
    const many = Array.from({ length: 3000 }, (_, i) => `X-H${i}: v`).join('\r\n')
    const r2 = await raw(request(`Authorization: Bearer ${TEAM_A_KEY}\r\n${many}\r\n`))
    expect(statusOf(r2.text)).toBe(431)
    await stillServing()
  })
})

describe('slow clients (slowloris), server.request_timeout_ms = 1500', () => {
  /** Open a connection and trickle `payload` one byte at a time; returns what came back. */
  function trickle(payload: string, everyMs: number): Promise<{ text: string; ms: number }> {
    return new Promise((resolve) => {
      const started = performance.now()
      const socket: Socket = connect(gw.port, '127.0.0.1')
      let text = ''
      let i = 0
      const tick = setInterval(() => {
        if (i < payload.length && !socket.destroyed) socket.write(payload[i++]!)
      }, everyMs)
      const finish = () => {
        clearInterval(tick)
        clearTimeout(cap)
        socket.destroy()
        resolve({ text, ms: performance.now() - started })
      }
      const cap = setTimeout(finish, 8000)
      socket.setEncoding('latin1')
      socket.on('data', (d: string) => (text += d))
      socket.on('close', finish)
      socket.on('error', finish)
    })
  }

  it('slow headers and slow bodies are cut with 408 within the timeout (+ 1 s check interval), while others are served', async () => {
    const headers = `POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEAM_A_KEY}\r\nContent-Type: application/json\r\nContent-Length: ${chatBody.length}\r\n\r\n`
    const slow = [
      ...Array.from({ length: 10 }, () => trickle(headers + chatBody, 100)), // headers never finish in time
      ...Array.from({ length: 10 }, () => trickle(chatBody, 100).then((r) => r)) // garbage start: parser error or timeout
    ]
    // a slow body: headers at once, then one byte every 100 ms
    const slowBody = new Promise<{ text: string; ms: number }>((resolve) => {
      const started = performance.now()
      const s = connect(gw.port, '127.0.0.1', () => s.write(headers))
      let text = ''
      let i = 0
      const tick = setInterval(() => !s.destroyed && i < chatBody.length && s.write(chatBody[i++]!), 100)
      const finish = () => {
        clearInterval(tick)
        s.destroy()
        resolve({ text, ms: performance.now() - started })
      }
      s.setEncoding('latin1')
      s.on('data', (d: string) => (text += d))
      s.on('close', finish)
      s.on('error', finish)
      setTimeout(finish, 8000)
    })
    // meanwhile, normal clients are served promptly
    await new Promise((r) => setTimeout(r, 300))
    const t = performance.now()
    await stillServing()
    expect(performance.now() - t).toBeLessThan(1000)

    const results = await Promise.all(slow.slice(0, 10))
    for (const r of results) {
      expect(statusOf(r.text)).toBe(408)
      expect(r.ms).toBeLessThan(3500)
    }
    for (const r of await Promise.all(slow.slice(10))) expect([400, 408]).toContain(statusOf(r.text))
    const b = await slowBody
    expect(statusOf(b.text)).toBe(408)
    expect(b.ms).toBeLessThan(3500)
    expect(gw.gateway.inflight()).toBe(0)
    await stillServing()
  }, 20_000)
})

describe('content types and paths', () => {
  it('non-JSON content types are a 415 in OpenAI shape; a JSON body without a content type is read as JSON', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'text/html']) {
      const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': type }, body: chatBody })
      expect(res.status).toBe(415)
      expect((await res.json()).error.code).toBe('unsupported_media_type')
    }
    const r = await raw(`POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEAM_A_KEY}\r\nContent-Length: ${chatBody.length}\r\nConnection: close\r\n\r\n${chatBody}`)
    expect(statusOf(r.text)).toBe(200)
  })

  it('path traversal reaches no file and no other team', async () => {
    const paths = ['/dashboard/../../../../etc/passwd', '/dashboard/..%2f..%2f..%2fetc%2fpasswd', '/admin/sessions/..%2f..%2f..%2fetc%2fpasswd', '/admin/teams/..%2fb', '/admin/teams/a%2f..%2fb', '/admin/../admin/teams/b', '/v1/../admin/teams/b', '//etc/passwd', '/admin/%2e%2e/%2e%2e/etc/passwd']
    for (const p of paths) {
      const r = await raw(`GET ${p} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEAM_A_KEY}\r\nConnection: close\r\n\r\n`)
      const status = statusOf(r.text)
      expect(status, p).toBeGreaterThanOrEqual(400)
      expect(status, p).toBeLessThan(500)
      expect(r.text).not.toMatch(/root:x:0:0/)
      expect(r.text).not.toMatch(/"team":"b"/)
    }
    // the admin key is needed for admin writes, whatever the path spelling
    for (const p of ['/admin/keys', '/admin//keys', '/admin/./keys', '/ADMIN/keys', '/admin/keys/']) {
      const res = await fetch(`${gw.url}${p}`, { method: 'POST', headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ team: 'b' }) })
      expect([403, 404], p).toContain(res.status)
    }
    const ok = await fetch(`${gw.url}/admin/keys`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ team: 'b' }) })
    expect(ok.status).toBe(201)
  })
})

describe('prompts built to make token counting slow', () => {
  it('a 1 MB prompt of one letter (no spaces) is counted in linear time: answered within seconds, the loop never blocked for long', async () => {
    let maxGap = 0
    let last = performance.now()
    const probe = setInterval(() => {
      const now = performance.now()
      maxGap = Math.max(maxGap, now - last)
      last = now
    }, 10)
    const started = performance.now()
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'A'.repeat(1_000_000) }], max_tokens: 5 }),
      signal: AbortSignal.timeout(15_000)
    })
    clearInterval(probe)
    expect(res.status).toBe(200)
    // ~0.5 s on an idle core; quadratic BPE on one 1 MB pre-token would block for hours
    expect(performance.now() - started).toBeLessThan(10_000)
    expect(maxGap).toBeLessThan(6000)
  }, 20_000)
})
