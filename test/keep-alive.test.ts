/**
 * A keep-alive connection survives an answer that did not need the request body (a refused key, an unknown
 * route): the gateway reads the rest of the body before answering, so the next request on that connection works
 * and no new connection is opened. A body that stalls or is declared over the limit gets `Connection: close`.
 */
import { request as httpRequest } from 'node:http'
import { Readable } from 'node:stream'
import { Agent, buildConnector, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { TEAM_A_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'

let fake: FakeOpenAI
let gw: TestGateway

beforeAll(async () => {
  fake = await startFakeOpenAI()
  gw = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, config: { server: { port: 0, host: '127.0.0.1', shutdown_grace_ms: 1000, body_limit_bytes: 1 << 20 } } })
})
afterAll(async () => {
  await gw.close(0)
  await fake.close()
})

/** An agent with one keep-alive connection at most, counting the connections it opens. */
function countingAgent() {
  const connect = buildConnector({})
  const agent = new Agent({
    connections: 1,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    connect: (opts, cb) => {
      counter.opened++
      return connect(opts, cb)
    }
  })
  const counter = { opened: 0, agent }
  return counter
}

const chatBody = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(200_000) }] })

describe('keep-alive after an answer that left the body unread', () => {
  it('a body still arriving after the answer (slow upload): the connection is kept, the next request uses it', async () => {
    const counting = countingAgent()
    try {
      const head = Buffer.from('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"')
      const tail = Buffer.from('slow"}]}')
      // the rest of the body comes 800 ms later: past node-server's 500 ms drain, which would destroy the socket
      const body = Readable.from((async function* () {
        yield head
        await new Promise((r) => setTimeout(r, 800))
        yield tail
      })())
      const a = await request(`${gw.url}/admin/reload`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${TEAM_A_KEY}`, 'content-length': String(head.length + tail.length) },
        body,
        dispatcher: counting.agent
      })
      expect(a.statusCode).toBe(403)
      expect(a.headers.connection).not.toBe('close')
      await a.body.text()
      const b = await request(`${gw.url}/healthz`, { dispatcher: counting.agent })
      expect(b.statusCode).toBe(200)
      await b.body.text()
      expect(counting.opened).toBe(1)
    } finally {
      await counting.agent.close()
    }
  })

  it('a body that stalls, or is declared larger than the limit, is answered with Connection: close', async () => {
    for (const length of [String(4 << 20), '1000']) {
      const res = await new Promise<{ status: number; connection?: string }>((resolve, reject) => {
        const req = httpRequest(`${gw.url}/v1/nowhere`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': length } })
        req.on('response', (r) => {
          r.resume()
          resolve({ status: r.statusCode!, connection: r.headers.connection })
          req.destroy()
        })
        req.on('error', reject)
        req.write('{"a":')
      })
      expect(res, length).toEqual({ status: length === '1000' ? 404 : 413, connection: 'close' })
    }
  })

  const firsts: [string, { method: 'POST' | 'GET'; path: string; headers: Record<string, string>; body?: string; status: number }][] = [
    ['admin route refusing a team key', { method: 'POST', path: '/admin/reload', headers: { authorization: `Bearer ${TEAM_A_KEY}` }, body: chatBody, status: 403 }],
    ['unknown route', { method: 'POST', path: '/v1/nowhere', headers: {}, body: chatBody, status: 404 }],
    ['chat without a key (refused before the body is read)', { method: 'POST', path: '/v1/chat/completions', headers: {}, body: chatBody, status: 401 }],
    ['messages with a bad key', { method: 'POST', path: '/v1/messages', headers: { 'x-api-key': 'sk-wrong' }, body: chatBody, status: 401 }]
  ]

  for (const [name, first] of firsts) {
    it(`${name}: the next request on the same connection is answered`, async () => {
      const counting = countingAgent()
      try {
        const a = await request(`${gw.url}${first.path}`, {
          method: first.method,
          headers: { 'content-type': 'application/json', ...first.headers },
          body: first.body,
          dispatcher: counting.agent
        })
        expect(a.statusCode).toBe(first.status)
        await a.body.text()
        // past node-server's 500 ms drain timeout, after which it would destroy the socket
        await new Promise((r) => setTimeout(r, 700))
        const b = await request(`${gw.url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${TEAM_A_KEY}` },
          body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'second' }] }),
          dispatcher: counting.agent
        })
        expect(b.statusCode).toBe(200)
        expect(((await b.body.json()) as { choices: { message: { content: string } }[] }).choices[0]!.message.content).toBe('You said: second')
        expect(counting.opened).toBe(1)
      } finally {
        await counting.agent.close()
      }
    })
  }
})
