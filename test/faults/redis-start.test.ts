/**
 * A gateway started while Redis is away (a restart during a Redis blip) must not crash-loop: `sluice start`
 * comes up not ready, names the store URL without its password, serves what needs no store per
 * `store.on_store_error`, and becomes ready once Redis is back, replaying the ledger it buffered.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createRedisStore } from '../../src/store/redis.js'
import { startFakeOpenAI, type FakeOpenAI } from '../fakes/openai.js'
import { TEAM_A_KEY, TEAM_B_KEY } from '../helpers/gateway.js'
import { spawnGateway, writeGatewayConfig, type GatewayProcess } from '../helpers/process.js'
import { waitFor } from '../helpers/wait.js'
import { runRedisTests, startRedis, type TestRedis } from '../helpers/redis.js'

let fake: FakeOpenAI
let redis: TestRedis
let proc: GatewayProcess | undefined
const prefix = `redis-start-${Date.now()}:`

const chat = (gw: GatewayProcess, key: string, session: string) =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-sluice-session': session },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] }),
    signal: AbortSignal.timeout(10_000)
  })

describe.runIf(runRedisTests)('Redis unreachable at start', () => {
  beforeAll(async () => {
    fake = await startFakeOpenAI()
    // a port nothing listens on yet; Redis comes up on it later in the test
    redis = await startRedis()
    await redis.stop()
  })
  afterEach(async () => {
    await proc?.stop()
    proc = undefined
  })
  afterAll(async () => {
    await redis?.stop()
    await fake?.close()
  })

  it('starts not ready, names the URL without credentials, serves per on_store_error, and recovers when Redis comes', async () => {
    const { file } = writeGatewayConfig({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      // team a: nothing to admit; team b: a budget, which needs the store
      policies: { a: {}, b: { budgets: [{ scope: 'team', limit_usd: 1000 }] } },
      config: { store: { kind: 'redis', url: `redis://:hunter2-secret@127.0.0.1:${redis.port}`, prefix } }
    })
    const gw = (proc = await spawnGateway(file))
    const logs = () => gw.stdout() + gw.stderr()
    expect(logs()).toContain(`cannot connect to Redis at redis://127.0.0.1:${redis.port}`)
    expect(logs()).toContain('store.url')
    expect(logs()).not.toContain('hunter2')

    const ready = await fetch(`${gw.url}/readyz`)
    expect(ready.status).toBe(503)
    const body = (await ready.json()) as { checks: { store: string } }
    expect(body.checks.store).toMatch(new RegExp(`^unreachable: cannot connect to Redis at redis://127\\.0\\.0\\.1:${redis.port}`))
    expect(JSON.stringify(body)).not.toContain('hunter2')

    // nothing to admit: served; a budget in scope: refused per on_store_error (reject)
    const served = await chat(gw, TEAM_A_KEY, 'while-away')
    expect(served.status).toBe(200)
    const refused = await chat(gw, TEAM_B_KEY, 'while-away-b')
    expect(refused.status).toBe(503)
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('budget_store_unavailable')

    await redis.start()
    expect(await waitFor(async () => (await fetch(`${gw.url}/readyz`)).status === 200, 10_000, 100)).toBe(true)
    expect((await chat(gw, TEAM_B_KEY, 'after')).status).toBe(200)
    // what was answered while Redis was away reached its ledger once it came
    const reader = await createRedisStore({ url: redis.url, prefix })
    try {
      expect(await waitFor(async () => (await reader.queryLedger({ session: 'while-away' })).length === 1, 10_000, 100)).toBe(true)
    } finally {
      await reader.close()
    }
  }, 40_000)
})
