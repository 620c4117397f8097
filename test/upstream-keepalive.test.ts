/**
 * Keep-alive connections to providers survive streamed answers. The gateway stops reading an upstream stream at
 * its protocol's last event (`data: [DONE]`, `message_stop`); providers often end the HTTP body a packet later,
 * and destroying the body before that end arrived closed the connection, so every stream opened a new one (a
 * TCP and TLS handshake to the provider each time). A stream the client leaves early still aborts the call.
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeAnthropic, type FakeAnthropic } from './fakes/anthropic.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { TEAM_A_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'

let fake: FakeOpenAI
let anthropic: FakeAnthropic
let gw: TestGateway
let client: OpenAI

beforeAll(async () => {
  fake = await startFakeOpenAI()
  // a pause after every event: the body's end comes 20 ms after message_stop
  anthropic = await startFakeAnthropic({ eventDelayMs: 20 })
  gw = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, anthropicUrl: anthropic.url, anthropicKey: anthropic.apiKey })
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 })
})
afterAll(async () => {
  await gw.close(0)
  await fake.close()
  await anthropic.close()
})

async function readStream(model: string, content: string, upstream: { activeRequests(): number }): Promise<string> {
  const stream = await client.chat.completions.create({ model, stream: true, messages: [{ role: 'user', content }] })
  let text = ''
  for await (const c of stream) text += c.choices[0]?.delta?.content ?? ''
  // the client has [DONE] before the upstream body ended: wait for that end (and a little for the gateway to
  // read it), so the next stream finds the connection idle; else the pool rightly opens another one for it
  while (upstream.activeRequests() > 0) await new Promise((r) => setTimeout(r, 5))
  await new Promise((r) => setTimeout(r, 20))
  return text
}

describe('upstream connections after a streamed answer', () => {
  it('OpenAI: the body ends 30 ms after [DONE]; five sequential streams share one connection', async () => {
    fake.script = () => ({ content: 'kept alive', endDelayMs: 30 })
    const before = fake.connectionsOpened()
    for (let i = 0; i < 5; i++) expect(await readStream('gpt-4o-mini', `keep-alive ${i}`, fake)).toBe('kept alive')
    // the first stream may open the connection; the next four reuse it
    expect(fake.connectionsOpened() - before).toBeLessThanOrEqual(1)
  })

  it('Anthropic: the body ends 20 ms after message_stop; five sequential streams share one connection', async () => {
    const before = anthropic.connectionsOpened()
    for (let i = 0; i < 5; i++) expect((await readStream('claude-sonnet', `keep-alive ${i}`, anthropic)).length).toBeGreaterThan(0)
    expect(anthropic.connectionsOpened() - before).toBeLessThanOrEqual(1)
  })

  it('a stream the client leaves early still aborts the upstream call (its connection is closed, not drained)', async () => {
    fake.script = () => ({ content: Array.from({ length: 200 }, (_, i) => `w${i}`).join(' '), chunkDelayMs: 10 })
    const controller = new AbortController()
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: 'leave early' }] }, { signal: controller.signal })
    let n = 0
    await (async () => {
      for await (const c of stream) if (c.choices[0]?.delta?.content && ++n === 3) controller.abort()
    })().catch(() => {})
    const deadline = Date.now() + 3000
    while (fake.activeRequests() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    // the fake stopped well before its 200 chunks (2 s): the gateway destroyed the upstream body
    expect(fake.activeRequests()).toBe(0)
  })

  it('a consumer that stops before the body ends without an abort (Responses pass-through stops at response.completed) destroys the body without an uncaught error', async () => {
    fake.script = undefined
    const res = await fetch(`${gw.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', input: 'stream a response', stream: true })
    })
    expect(res.status).toBe(200)
    const text = await res.text()
    expect(text).toContain('response.completed')
    // an 'error' event without a listener would have been thrown on the next turns; the gateway still answers
    await new Promise((r) => setTimeout(r, 50))
    expect(await readStream('gpt-4o-mini', 'still here', fake)).toBeTruthy()
  })
})
