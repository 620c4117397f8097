/**
 * Client faults: a client that leaves (before the upstream answers, mid-stream, during a cascade) aborts the
 * upstream request, and what was used is still charged: one ledger entry per provider call, the budget
 * reservation released, nothing left in flight.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startFakeOpenAI, type FakeOpenAI } from '../fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, startTestGateway, type TestGateway } from '../helpers/gateway.js'
import { waitFor } from '../helpers/wait.js'

let fake: FakeOpenAI
let backup: FakeOpenAI
let gw: TestGateway

beforeAll(async () => {
  fake = await startFakeOpenAI()
  backup = await startFakeOpenAI({ apiKey: 'sk-fake-backup-upstream' })
  gw = await startTestGateway({
    openaiUrl: fake.url,
    openaiKey: fake.apiKey,
    policies: {
      a: {
        budgets: [{ scope: 'team', limit_usd: 1000 }],
        routing: {
          routes: { tiered: { cascade: [{ route: 'gpt-4o-mini', checks: { refusal: true } }, { route: 'backup-mini' }] } },
          retry: { retries: 0 },
          breaker: false
        }
      }
    },
    config: {
      providers: {
        openai: { kind: 'openai', base_url: fake.url, api_key: fake.apiKey },
        backup: { kind: 'openai', base_url: backup.url, api_key: backup.apiKey }
      },
      models: {
        'gpt-4o-mini': { provider: 'openai', model: 'gpt-4o-mini' },
        'backup-mini': { provider: 'backup', model: 'gpt-4o-mini' }
      }
    }
  })
})
afterAll(async () => {
  await gw?.close(0)
  await fake?.close()
  await backup?.close()
})
beforeEach(() => {
  fake.script = undefined
  backup.script = undefined
})

const post = (body: Record<string, unknown>, signal: AbortSignal) =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json', 'x-sluice-session': 'client-faults' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'please write a long answer' }], ...body }),
    signal
  })

/** Entries written since `before` (ledger is append-only per team). */
async function newEntries(before: number) {
  await waitFor(() => gw.gateway.inflight() === 0)
  await new Promise((r) => setTimeout(r, 50))
  await gw.gateway.ledger.flush()
  return (await gw.gateway.store.queryLedger({ team: 'a' })).slice(before)
}

const countEntries = async () => {
  await gw.gateway.ledger.flush()
  return (await gw.gateway.store.queryLedger({ team: 'a' })).length
}

async function reservedUsd(): Promise<number> {
  const res = await fetch(`${gw.url}/admin/budgets?team=a`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  return ((await res.json()).data as { reserved_usd: number }[]).reduce((s, r) => s + r.reserved_usd, 0)
}

async function expectReleased() {
  const end = Date.now() + 3000
  let r = await reservedUsd()
  while (r !== 0 && Date.now() < end) {
    await new Promise((res) => setTimeout(res, 25))
    r = await reservedUsd()
  }
  expect(r).toBe(0)
  await waitFor(() => gw.gateway.inflight() === 0, 5000)
  expect(gw.gateway.inflight()).toBe(0)
  expect(await waitFor(() => fake.activeRequests() === 0 && backup.activeRequests() === 0)).toBe(true)
}

describe('client disconnects', () => {
  it('before the upstream answers (non-stream): upstream aborted, the prompt charged as an aborted estimate', async () => {
    fake.script = () => ({ delayMs: 1500 })
    const before = await countEntries()
    const ac = new AbortController()
    const pending = post({ model: 'gpt-4o-mini' }, ac.signal)
    expect(await waitFor(() => fake.activeRequests() === 1)).toBe(true)
    ac.abort()
    await expect(pending).rejects.toThrow()
    expect(await waitFor(() => fake.requests.at(-1)!.aborted)).toBe(true)
    const entries = await newEntries(before)
    expect(entries).toHaveLength(1)
    expect(entries[0]).toMatchObject({ status: 'aborted', estimated: true, session: 'client-faults' })
    expect(entries[0]!.tokens.input).toBeGreaterThan(0)
    expect(entries[0]!.cost_usd).toBeGreaterThan(0)
    await expectReleased()
  })

  it('before the upstream answers (stream): same, the stream never started', async () => {
    fake.script = () => ({ delayMs: 1500 })
    const before = await countEntries()
    const ac = new AbortController()
    const pending = post({ model: 'gpt-4o-mini', stream: true }, ac.signal)
    expect(await waitFor(() => fake.activeRequests() === 1)).toBe(true)
    ac.abort()
    await expect(pending).rejects.toThrow()
    expect(await waitFor(() => fake.requests.at(-1)!.aborted)).toBe(true)
    const entries = await newEntries(before)
    expect(entries.map((e) => e.status)).toEqual(['aborted'])
    await expectReleased()
  })

  it('mid-stream: upstream aborted, the streamed part charged (estimated output > 0)', async () => {
    const words = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ')
    fake.script = () => ({ content: words, chunkDelayMs: 40 })
    const before = await countEntries()
    const servedBefore = fake.served.completion
    const ac = new AbortController()
    const res = await post({ model: 'gpt-4o-mini', stream: true }, ac.signal)
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    let got = ''
    while (!got.includes('word3')) got += new TextDecoder().decode((await reader.read()).value)
    ac.abort()
    expect(await waitFor(() => fake.requests.at(-1)!.aborted)).toBe(true)
    const entries = await newEntries(before)
    expect(entries).toHaveLength(1)
    const e = entries[0]!
    expect(e).toMatchObject({ status: 'aborted', estimated: true, stream: true })
    expect(e.tokens.output).toBeGreaterThan(0)
    // charged about what the upstream generated before it was stopped (never the whole 60-word answer)
    const servedNow = fake.served.completion - servedBefore
    expect(servedNow).toBeLessThan(60)
    expect(e.tokens.output).toBeLessThan(60)
    await expectReleased()
  })

  it('during a cascade (tier 0 still generating): tier 0 aborted, no later tier called', async () => {
    fake.script = () => ({ delayMs: 1500 })
    const backupBefore = backup.requests.length
    const before = await countEntries()
    const ac = new AbortController()
    const pending = post({ model: 'tiered', stream: true }, ac.signal)
    expect(await waitFor(() => fake.activeRequests() === 1)).toBe(true)
    ac.abort()
    await expect(pending).rejects.toThrow()
    expect(await waitFor(() => fake.requests.at(-1)!.aborted)).toBe(true)
    const entries = await newEntries(before)
    expect(entries.map((e) => [e.provider, e.status])).toEqual([['openai', 'aborted']])
    expect(backup.requests.length).toBe(backupBefore)
    await expectReleased()
  })

  it('during a cascade (tier 1 streaming after tier 0 was rejected): tier 1 aborted and charged, tier 0 charged too', async () => {
    fake.script = () => ({ content: "I don't know." })
    backup.script = () => ({ content: Array.from({ length: 60 }, (_, i) => `w${i}`).join(' '), chunkDelayMs: 40 })
    const before = await countEntries()
    const ac = new AbortController()
    const res = await post({ model: 'tiered', stream: true }, ac.signal)
    expect(res.status).toBe(200)
    const reader = res.body!.getReader()
    let got = ''
    while (!got.includes('w2')) got += new TextDecoder().decode((await reader.read()).value)
    ac.abort()
    expect(await waitFor(() => backup.requests.at(-1)!.aborted)).toBe(true)
    const entries = await newEntries(before)
    expect(entries.map((e) => [e.provider, e.status])).toEqual([
      ['openai', 'rejected'],
      ['backup', 'aborted']
    ])
    expect(entries.every((e) => e.cost_usd > 0)).toBe(true)
    await expectReleased()
  })

  it('100 clients that leave at random moments leave nothing in flight and no reservation', async () => {
    fake.script = () => ({ content: 'a b c d e f g h i j', chunkDelayMs: 10, delayMs: Math.floor(Math.random() * 50) })
    await Promise.all(
      Array.from({ length: 100 }, async (_, i) => {
        const ac = new AbortController()
        setTimeout(() => ac.abort(), Math.floor(Math.random() * 150))
        try {
          const res = await post({ model: 'gpt-4o-mini', stream: i % 2 === 0 }, ac.signal)
          await res.text()
        } catch {
          // aborted: expected for most
        }
      })
    )
    await expectReleased()
  })
})
