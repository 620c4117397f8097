import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { SettleBudgetRequest, SettleBudgetResult } from '../src/store/types.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'

// A non-streamed answer does not wait for the budget settlement's store round trip (on Redis, one per miss): the
// settlement is held back here by a gate on the store, as a slow Redis would hold it.
const LIMIT = 0.01

let fake: FakeOpenAI
let gw: TestGateway
let gate: { open: () => void; opened: Promise<void> }
let settlements: number
const closedGate = () => {
  let open!: () => void
  const opened = new Promise<void>((r) => (open = r))
  return { open, opened }
}

beforeAll(async () => {
  fake = await startFakeOpenAI()
  gw = await startTestGateway({
    openaiUrl: fake.url,
    openaiKey: fake.apiKey,
    policies: { a: { budgets: [{ scope: 'team', limit_usd: LIMIT, window: 'day' }] } }
  })
  const store = gw.gateway.store
  const settle = store.settleBudget.bind(store)
  settlements = 0
  store.settleBudget = async (req: SettleBudgetRequest): Promise<SettleBudgetResult> => {
    await gate.opened
    settlements++
    return settle(req)
  }
})
afterAll(async () => {
  gate?.open()
  // the last test has already shut the gateway down
  await gw?.close(0).catch(() => {})
  await fake?.close()
})

const client = (key: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 })
const budget = async () => {
  const res = await fetch(`${gw.url}/admin/budgets?team=a`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  return ((await res.json()) as { data: { spent_usd: number; reserved_usd: number }[] }).data[0]!
}
const ledgerTotal = async () => {
  await gw.gateway.ledger.flush()
  return (await gw.gateway.store.queryLedger({ team: 'a' })).reduce((s, e) => s + e.cost_usd, 0)
}

describe('budget settlement off the answer path (openai SDK, real HTTP)', () => {
  it('answers before the settlement lands, with the remainder it will leave, the ledger entry written and the reservation held', async () => {
    gate = closedGate()
    const { data, response } = await client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 50 }).withResponse()
    expect(data.choices[0]!.message.content).toBeTruthy()
    expect(settlements).toBe(0)
    const cost = Number(response.headers.get('x-sluice-cost-usd'))
    expect(cost).toBeGreaterThan(0)
    // nothing was spent before: the remainder is the limit less this request's cost, as the settlement will leave it
    expect(Number(response.headers.get('x-sluice-budget-remaining-usd'))).toBeCloseTo(LIMIT - cost, 9)
    expect(await ledgerTotal()).toBeCloseTo(cost, 12)
    // until the settlement lands the worst case stays reserved: budgets stay on the safe side meanwhile
    const held = await budget()
    expect(held.spent_usd).toBe(0)
    expect(held.reserved_usd).toBeGreaterThan(cost)

    gate.open()
    await expect.poll(() => settlements).toBe(1)
    await expect.poll(async () => (await budget()).reserved_usd).toBe(0)
    expect((await budget()).spent_usd).toBeCloseTo(cost, 9)
  })

  it("ends a stream only after its settlement (a client's next request must not pay for this one's tail)", async () => {
    gate = closedGate()
    const settledBefore = settlements
    const stream = await client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stream please' }], max_tokens: 20, stream: true, stream_options: { include_usage: true } })
    setTimeout(() => gate.open(), 100)
    let usage: OpenAI.CompletionUsage | null | undefined
    for await (const chunk of stream) usage ??= chunk.usage
    // the SDK saw the end of the stream only once the settlement had landed
    expect(usage?.total_tokens).toBeGreaterThan(0)
    expect(settlements).toBe(settledBefore + 1)
    expect((await budget()).reserved_usd).toBe(0)
  })

  it('answers embeddings before their settlement lands too', async () => {
    gate = closedGate()
    const settledBefore = settlements
    const { data, response } = await client(TEAM_A_KEY).embeddings.create({ model: 'text-embedding-3-small', input: 'hello there' }).withResponse()
    expect(data.data[0]!.embedding.length).toBeGreaterThan(0)
    expect(settlements).toBe(settledBefore)
    const cost = Number(response.headers.get('x-sluice-cost-usd'))
    const held = await budget()
    expect(Number(response.headers.get('x-sluice-budget-remaining-usd'))).toBeCloseTo(LIMIT - held.spent_usd - cost, 9)
    gate.open()
    await expect.poll(() => settlements).toBe(settledBefore + 1)
  })

  it('a request with a session waits for its running total, which the answer carries; the total does not wait for the settlement', async () => {
    gate = closedGate()
    const store = gw.gateway.store
    const incrBy = store.incrBy.bind(store)
    let totals = 0
    store.incrBy = async (...args: Parameters<typeof incrBy>) => {
      totals++
      return incrBy(...args)
    }
    let answered = false
    const asked = client(TEAM_A_KEY)
      .chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'and again' }], max_tokens: 20 }, { headers: { 'x-sluice-session': 'settle-s1' } })
      .withResponse()
      .then((r) => {
        answered = true
        return r
      })
    await new Promise((r) => setTimeout(r, 100))
    // the end callbacks run alongside each other: the running total is written while the settlement is held (on
    // Redis the two share one write), and the answer, which carries the total, waits for both
    expect(totals).toBe(1)
    expect(answered).toBe(false)
    gate.open()
    const { response } = await asked
    store.incrBy = incrBy
    expect(Number(response.headers.get('x-sluice-session-cost-usd'))).toBeCloseTo(Number(response.headers.get('x-sluice-cost-usd')), 9)
  })

  it('shutdown waits for a settlement still under way', async () => {
    gate = closedGate()
    const spentBefore = (await budget()).spent_usd
    const { response } = await client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'last one' }], max_tokens: 20 }).withResponse()
    const cost = Number(response.headers.get('x-sluice-cost-usd'))
    const settledBefore = settlements
    setTimeout(() => gate.open(), 100)
    // the request is still in flight until its end callbacks have run, so the drain waits for the settlement
    await gw.gateway.close(2000)
    expect(settlements).toBe(settledBefore + 1)
    // the shutdown flush wrote every request's entry
    expect((await gw.gateway.store.queryLedger({ team: 'a' })).length).toBe(5)
    expect(spentBefore).toBeGreaterThan(0)
    expect(cost).toBeGreaterThan(0)
  })
})
