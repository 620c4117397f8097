import { spawnSync } from 'node:child_process'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createRedisStore } from '../src/store/redis.js'
import type { Store } from '../src/store/types.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { refusal } from './helpers/errors.js'
import { ADMIN_KEY, TEAM_A_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'
import { ledgerEntry } from './helpers/ledger.js'
import { countSocketWrites, runRedisTests, startRedisCluster, type TestRedisCluster, type WritableSocket } from './helpers/redis.js'

// The shared state on a real Redis Cluster (three masters, no replicas): `store: { kind: redis, urls: [...] }`.
// The budget and rate-limit scripts run on it in test/budget-store.test.ts; this file covers the rest of the store
// and a gateway in front of it.
const entry = ledgerEntry

describe.runIf(runRedisTests)('Redis Cluster store (three masters)', () => {
  let cluster: TestRedisCluster
  let store: Store
  let fake: FakeOpenAI
  let gw: TestGateway
  beforeAll(async () => {
    cluster = await startRedisCluster(3)
    store = await createRedisStore({ urls: cluster.urls, prefix: 'cl:' })
    fake = await startFakeOpenAI()
    gw = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      policies: {
        a: {
          cache: { when: 'always', semantic: { enabled: true } },
          budgets: [{ scope: 'team', limit_usd: 1, window: 'day' }, { scope: 'session', limit_usd: 1 }],
          rate_limits: [{ scope: 'key', rpm: 5 }]
        }
      },
      config: { store: { kind: 'redis', urls: cluster.urls, prefix: 'gw:' } }
    })
  }, 30_000)
  afterAll(async () => {
    await gw?.close(0)
    await fake?.close()
    await store?.close()
    await cluster?.stop()
  })

  /** Keys each master holds. */
  const keysPerMaster = () => cluster.ports.map((p) => Number(spawnSync('redis-cli', ['-p', String(p), 'dbsize']).stdout.toString().trim()))

  it('spreads durable keys, counters and cache entries over the masters and reads them back', async () => {
    await Promise.all(Array.from({ length: 30 }, (_, i) => store.set(`k${i}`, `v${i}`)))
    await Promise.all(Array.from({ length: 30 }, (_, i) => store.cacheSet(`e${i}`, `entry ${i}`, 60_000)))
    expect(await Promise.all(Array.from({ length: 30 }, (_, i) => store.get(`k${i}`)))).toEqual(Array.from({ length: 30 }, (_, i) => `v${i}`))
    expect(await store.cacheGet('e17')).toBe('entry 17')
    expect(await store.incrBy('n', 2, 60_000)).toBe(2)
    expect(await store.incrBy('n', 3, 60_000, true)).toBe(5)
    await store.del('k3')
    expect(await store.get('k3')).toBeNull()
    expect(keysPerMaster().every((n) => n > 0)).toBe(true)
  })

  it('appends the ledger and reads it back', async () => {
    await store.appendLedger([entry('c1', Date.now()), entry('c2', Date.now())])
    expect((await store.queryLedger({ team: 'a' })).map((e) => e.id).sort()).toEqual(['c1', 'c2'])
  })

  it('is idle only while a command awaits a reply on some master (store.reserve_early)', async () => {
    expect(store.idle?.()).toBe(true)
    const reads = Array.from({ length: 6 }, (_, i) => store.cacheGet(`e${i}`))
    expect(store.idle?.()).toBe(false)
    await Promise.all(reads)
    expect(store.idle?.()).toBe(true)
    // a cache write and a ledger append in flight are nobody's wait
    const writes = [store.cacheSet('idle', 'v', 60_000), store.appendLedger([entry('c3', Date.now())])]
    expect(store.idle?.()).toBe(true)
    await Promise.all(writes)
  })

  it('sends the commands of one batch to each master in one write', async () => {
    const masters = (store as unknown as { client: { nodes(role: string): { stream: WritableSocket }[] } }).client.nodes('master')
    await countSocketWrites(
      masters.map((m) => m.stream),
      async (writes) => {
        // twelve reads spread over the three masters, issued together
        await Promise.all(Array.from({ length: 12 }, (_, i) => store.cacheGet(`e${i}`)))
        expect(writes()).toBeGreaterThan(0)
        expect(writes()).toBeLessThanOrEqual(masters.length)
      }
    )
  })

  it('serves a gateway: misses and hits, budgets and rate limits, the ledger and keys made at run time', async () => {
    fake.script = () => ({ completionTokens: 20, promptTokens: 10 })
    const client = (apiKey: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey, maxRetries: 0 })
    const ask = (apiKey: string, content: string) =>
      client(apiKey).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], max_tokens: 50 }, { headers: { 'x-sluice-session': 'cl-1' } }).withResponse()
    const admin = async (path: string, init?: RequestInit) => (await fetch(`${gw.url}${path}`, { ...init, headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' } })).json() as Promise<any>

    const miss = await ask(TEAM_A_KEY, 'How do I rotate the API keys of project wren?')
    expect(miss.response.headers.get('x-sluice-cache')).toBe('miss')
    const cost = Number(miss.response.headers.get('x-sluice-cost-usd'))
    expect(cost).toBeGreaterThan(0)
    const hit = await ask(TEAM_A_KEY, 'How do I rotate the API keys of project wren?')
    expect(hit.response.headers.get('x-sluice-cache')).toBe('hit')
    const semantic = await ask(TEAM_A_KEY, 'how do i rotate the api keys of project wren')
    expect(semantic.response.headers.get('x-sluice-cache')).toBe('semantic-hit')
    expect(fake.requests.length).toBe(1)
    // spent what the miss cost, nothing held for the hits; the session's total too
    await expect.poll(async () => (await admin('/admin/budgets?team=a')).data.find((b: { scope: string }) => b.scope === 'team')).toMatchObject({ reserved_usd: 0 })
    const team = (await admin('/admin/budgets?team=a')).data.find((b: { scope: string }) => b.scope === 'team')
    expect(team.spent_usd).toBeCloseTo(cost, 9)
    // the ledger: the miss and both hits, the miss's cost
    await expect.poll(async () => (await admin('/admin/spend?team=a')).total).toMatchObject({ requests: 3 })
    expect((await admin('/admin/spend?team=a')).total.cost_usd).toBeCloseTo(cost, 8)

    // a key made through the admin API is read back from the Cluster by the keyring
    const made = await admin('/admin/keys', { method: 'POST', body: JSON.stringify({ team: 'a', name: 'cluster' }) })
    const fresh = await ask(made.key, 'How do I rotate the API keys of project wren?')
    expect(fresh.response.headers.get('x-sluice-cache')).toBe('hit')
    // the key rpm of the first key: three requests so far, two more fit, the sixth is refused
    await ask(TEAM_A_KEY, 'a fourth question')
    await ask(TEAM_A_KEY, 'a fifth question')
    expect((await refusal(ask(TEAM_A_KEY, 'a sixth question'))).code).toBe('rate_limit_exceeded')
  }, 30_000)
})
