/**
 * Redis killed under load and restarted. Documented fail mode (store.on_store_error, default `reject`):
 * requests that need the store to admit them (budgets, rate limits) get a 503 `budget_store_unavailable`
 * with Retry-After; requests that do not (no budget in scope) keep being served. The ledger buffers what it
 * cannot write and replays it after recovery: nothing lost, nothing written twice.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeOpenAI, type FakeOpenAI } from '../fakes/openai.js'
import { TEAM_A_KEY, TEAM_B_KEY, startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { runRedisTests, startRedis, type TestRedis } from '../helpers/redis.js'

let fake: FakeOpenAI
let redis: TestRedis
let gw: TestGateway

describe.runIf(runRedisTests)('Redis killed under load and restarted', () => {
  beforeAll(async () => {
    fake = await startFakeOpenAI()
    redis = await startRedis()
    gw = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      // team a: no budget in scope, served without the store; team b: a budget, so admission needs the store
      policies: { a: {}, b: { budgets: [{ scope: 'team', limit_usd: 1000 }] } },
      config: { store: { kind: 'redis', url: redis.url, prefix: `faults-${Date.now()}:` } }
    })
  })
  afterAll(async () => {
    await gw?.close(0)
    await redis?.stop()
    await fake?.close()
  })

  interface Outcome {
    n: number
    team: 'a' | 'b'
    startedAt: number
    status: number
    code?: string
    retryAfter?: string | null
  }

  const send = async (n: number, team: 'a' | 'b'): Promise<Outcome> => {
    const startedAt = Date.now()
    try {
      const res = await fetch(`${gw.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${team === 'a' ? TEAM_A_KEY : TEAM_B_KEY}`, 'content-type': 'application/json', 'x-sluice-session': `load-${n}` },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `request ${n}` }], stream: n % 3 === 0 }),
        signal: AbortSignal.timeout(10_000)
      })
      const text = await res.text()
      const code = res.status === 200 ? undefined : JSON.parse(text).error?.code
      return { n, team, startedAt, status: res.status, code, retryAfter: res.headers.get('retry-after') }
    } catch (err) {
      return { n, team, startedAt, status: -1, code: (err as Error).message }
    }
  }

  it('keeps serving per the fail mode, /readyz reports it, and the ledger replays with nothing lost or doubled', async () => {
    const outcomes: Outcome[] = []
    let n = 0
    let stopLoad = false
    // four closed-loop workers, two per team, until told to stop (bounded below)
    const workers = Array.from({ length: 4 }, (_, w) =>
      (async () => {
        while (!stopLoad) {
          outcomes.push(await send(n++, w % 2 === 0 ? 'a' : 'b'))
          await new Promise((r) => setTimeout(r, 5))
        }
      })()
    )

    await new Promise((r) => setTimeout(r, 500))
    await redis.stop()
    const killedAt = Date.now()
    await new Promise((r) => setTimeout(r, 1200))

    const ready = await fetch(`${gw.url}/readyz`, { signal: AbortSignal.timeout(5000) })
    const readyBody = await ready.json()
    expect(ready.status).toBe(503)
    expect(readyBody.checks.store).toMatch(/^unreachable/)
    expect(readyBody.checks.ledger).toMatch(/^\d+ entries buffered$/)
    expect(gw.gateway.ledger.pending()).toBeGreaterThan(0)

    await redis.start()
    const restartedAt = Date.now()
    await new Promise((r) => setTimeout(r, 1500))
    stopLoad = true
    await Promise.all(workers)

    // recovery: the ledger retries every second; bounded wait for the buffer to drain
    const deadline = Date.now() + 10_000
    while ((gw.gateway.ledger.pending() > 0 || gw.gateway.inflight() > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    await gw.gateway.ledger.flush()
    expect(gw.gateway.ledger.pending()).toBe(0)
    expect(gw.gateway.ledger.dropped()).toBe(0)
    const readyAgain = await fetch(`${gw.url}/readyz`)
    expect(readyAgain.status).toBe(200)

    // no hung or crashed request; no 5xx except the documented 503 for admission without the store
    expect(outcomes.filter((o) => o.status === -1)).toEqual([])
    const unexpected = outcomes.filter((o) => o.status !== 200 && !(o.status === 503 && o.code === 'budget_store_unavailable'))
    expect(unexpected).toEqual([])
    const during = (o: Outcome) => o.startedAt > killedAt && o.startedAt < restartedAt - 100
    // team a (no budget) was served throughout the outage
    const aDuring = outcomes.filter((o) => o.team === 'a' && during(o))
    expect(aDuring.length).toBeGreaterThan(5)
    expect(aDuring.every((o) => o.status === 200)).toBe(true)
    // team b (budget, on_store_error: reject) was refused with a retryable 503 during the outage
    const bDuring = outcomes.filter((o) => o.team === 'b' && during(o))
    expect(bDuring.length).toBeGreaterThan(5)
    expect(bDuring.every((o) => o.status === 503 && o.retryAfter === '1')).toBe(true)
    // and served again after recovery
    const bAfter = outcomes.filter((o) => o.team === 'b' && o.startedAt > restartedAt + 1100)
    expect(bAfter.some((o) => o.status === 200)).toBe(true)

    // the restarted Redis is empty (no persistence in the test), so every request that began after the kill
    // must be in the ledger exactly once: written from the buffer after recovery, or directly afterwards
    const entries = await gw.gateway.store.queryLedger({})
    const ids = entries.map((e) => e.id)
    expect(new Set(ids).size).toBe(ids.length)
    const bySession = new Map<string, number>()
    for (const e of entries) bySession.set(e.session!, (bySession.get(e.session!) ?? 0) + 1)
    const servedAfterKill = outcomes.filter((o) => o.status === 200 && o.startedAt > killedAt)
    expect(servedAfterKill.length).toBeGreaterThan(20)
    for (const o of servedAfterKill) expect(bySession.get(`load-${o.n}`), `request ${o.n} (team ${o.team})`).toBe(1)
    // refused requests never reached a provider, so they have no entry
    for (const o of outcomes.filter((o) => o.status === 503)) expect(bySession.get(`load-${o.n}`)).toBeUndefined()
    // every entry in the ledger is a request the client saw answered; none counted twice
    const answered = new Set(outcomes.filter((o) => o.status === 200).map((o) => `load-${o.n}`))
    for (const [session, count] of bySession) {
      expect(answered.has(session)).toBe(true)
      expect(count).toBe(1)
    }
  }, 40_000)
})
