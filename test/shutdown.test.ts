/**
 * Process shutdown, with a real `sluice start` child process and a Redis store (so the ledger outlives it):
 * SIGTERM drains in-flight requests (streams included) within `server.shutdown_grace_ms` and flushes the
 * ledger; requests still running at the end of the grace period are aborted and charged; a second SIGTERM
 * aborts what is in flight, writes its ledger entries and exits within about a second.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createRedisStore } from '../src/store/redis.js'
import type { Store } from '../src/store/types.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { TEAM_A_KEY } from './helpers/gateway.js'
import { spawnGateway, writeGatewayConfig, type GatewayProcess } from './helpers/process.js'
import { waitFor } from './helpers/wait.js'
import { runRedisTests, startRedis, type TestRedis } from './helpers/redis.js'

let fake: FakeOpenAI
let redis: TestRedis
let reader: Store
const prefix = `shutdown-${Date.now()}:`
let proc: GatewayProcess | undefined

const words = (n: number) => Array.from({ length: n }, (_, i) => `w${i}`).join(' ')

async function start(graceMs: number) {
  const { file } = writeGatewayConfig({
    openaiUrl: fake.url,
    openaiKey: fake.apiKey,
    config: { server: { port: 0, host: '127.0.0.1', shutdown_grace_ms: graceMs }, store: { kind: 'redis', url: redis.url, prefix } }
  })
  proc = await spawnGateway(file)
  return proc
}

const send = (gw: GatewayProcess, session: string, body: Record<string, unknown>) =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json', 'x-sluice-session': session },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'drain me' }], ...body }),
    signal: AbortSignal.timeout(15_000)
  }).then(
    async (res) => ({ status: res.status, text: await res.text().catch((e: Error) => `<body error: ${e.message}>`) }),
    (err: Error) => ({ status: -1, text: err.message })
  )

describe.runIf(runRedisTests)('SIGTERM', () => {
  beforeAll(async () => {
    fake = await startFakeOpenAI()
    redis = await startRedis()
    reader = await createRedisStore({ url: redis.url, prefix })
  })
  afterEach(async () => {
    await proc?.stop()
    proc = undefined
    fake.script = undefined
  })
  afterAll(async () => {
    await reader?.close()
    await redis?.stop()
    await fake?.close()
  })

  it('drains in-flight requests and streams within the grace period, refuses new ones, flushes the ledger, exits 0', async () => {
    const gw = await start(8000)
    // streams of ~1.2 s and non-streamed answers that take 800 ms
    fake.script = (body) => (body.stream ? { content: words(12), chunkDelayMs: 100 } : { delayMs: 800 })
    const run = `drain-${Date.now()}`
    const pending = Array.from({ length: 8 }, (_, i) => send(gw, `${run}-${i}`, { stream: i % 2 === 0 }))
    expect(await waitFor(() => fake.activeRequests() === 8, 5000)).toBe(true)
    const signalledAt = Date.now()
    gw.kill('SIGTERM')
    await gw.waitForLog(/SIGTERM: draining/)
    // a request arriving while draining is refused (503 shutting_down) or finds the port closed
    const late = await send(gw, `${run}-late`, {})
    expect(late.status === 503 ? JSON.parse(late.text).error.code : late.status).toBe(late.status === 503 ? 'shutting_down' : -1)

    const results = await Promise.all(pending)
    const exit = await gw.exited
    expect(exit.code).toBe(0)
    expect(Date.now() - signalledAt).toBeLessThan(8000)
    for (const [i, r] of results.entries()) {
      expect(r.status, r.text).toBe(200)
      if (i % 2 === 0) {
        expect(r.text.trimEnd().endsWith('data: [DONE]')).toBe(true)
        expect(r.text).toContain('w11')
      } else expect(JSON.parse(r.text).choices[0].message.content).toBe('You said: drain me')
    }
    expect(gw.stdout()).toMatch(/"stopped"/)
    // the ledger was flushed before exit: every drained request has its entry in Redis
    const entries = (await reader.queryLedger({ team: 'a' })).filter((e) => e.session?.startsWith(run))
    expect(entries.map((e) => e.session).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `${run}-${i}`).sort())
    expect(entries.every((e) => e.status === 'ok' && e.cost_usd > 0)).toBe(true)
  }, 30_000)

  it('aborts what is still running when the grace period ends, and charges it', async () => {
    const gw = await start(600)
    fake.script = () => ({ content: words(100), chunkDelayMs: 50 }) // a 5 s stream
    const run = `grace-${Date.now()}`
    const pending = send(gw, `${run}-0`, { stream: true })
    expect(await waitFor(() => fake.activeRequests() === 1, 5000)).toBe(true)
    await new Promise((r) => setTimeout(r, 200))
    const signalledAt = Date.now()
    gw.kill('SIGTERM')
    const r = await pending
    const exit = await gw.exited
    expect(exit.code).toBe(0)
    expect(Date.now() - signalledAt).toBeLessThan(4000)
    // the client got what streamed, then the end of the stream, not all 100 words
    expect(r.status).toBe(200)
    expect(r.text).not.toContain('w99')
    expect(await waitFor(() => fake.requests.at(-1)!.aborted, 2000)).toBe(true)
    const entries = (await reader.queryLedger({ team: 'a' })).filter((e) => e.session === `${run}-0`)
    expect(entries).toHaveLength(1)
    expect(entries[0]).toMatchObject({ status: 'aborted', estimated: true })
    expect(entries[0]!.tokens.output).toBeGreaterThan(0)
  }, 30_000)

  it('a second SIGTERM aborts what is in flight, writes its ledger entry and exits within about a second', async () => {
    const gw = await start(20_000)
    fake.script = () => ({ content: words(200), chunkDelayMs: 50 }) // a 10 s stream, inside the grace period
    const session = `twice-${Date.now()}`
    const pending = send(gw, session, { stream: true })
    expect(await waitFor(() => fake.activeRequests() === 1, 5000)).toBe(true)
    gw.kill('SIGTERM')
    await gw.waitForLog(/SIGTERM: draining/)
    await new Promise((r) => setTimeout(r, 300))
    const again = Date.now()
    gw.kill('SIGTERM')
    const exit = await gw.exited
    expect(Date.now() - again).toBeLessThan(1500)
    expect(exit.code).toBe(1)
    expect(gw.stdout()).toMatch(/SIGTERM again: aborting in-flight requests/)
    const r = await pending
    expect(r.text).not.toContain('w199')
    // the stream was settled and flushed before exit, not lost
    const entries = (await reader.queryLedger({ team: 'a' })).filter((e) => e.session === session)
    expect(entries).toHaveLength(1)
    expect(entries[0]).toMatchObject({ status: 'aborted', estimated: true })
    expect(entries[0]!.tokens.output).toBeGreaterThan(0)
  }, 30_000)
})
