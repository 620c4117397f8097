import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { refusal } from './helpers/errors.js'
import { ADMIN_KEY, TEAM_A_KEY, TEAM_B_KEY, TEAM_D_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'
import { runRedisTests, startRedis, type TestRedis } from './helpers/redis.js'

// Budgets sit after the caches (a hit costs nothing and is never refused by a budget); rate limits before them.
// On Redis the reservation is sent before the lookup by default (`store.reserve_early`): a hit releases it, and
// what a user sees must be the same as with the memory store or with reserve_early off.
const KEY_C = 'sk-sluice-team-c-0000000000000003'
const KEY_E = 'sk-sluice-team-e-0000000000000005'
let fake: FakeOpenAI
let redis: TestRedis | undefined
beforeAll(async () => {
  fake = await startFakeOpenAI()
  if (runRedisTests) redis = await startRedis()
})
afterAll(async () => {
  await fake?.close()
  await redis?.stop()
})

const stores: [string, () => Record<string, unknown>][] = [
  ['memory store', () => ({ kind: 'memory' })],
  ['Redis, reservation sent before the lookup (default)', () => ({ kind: 'redis', url: redis!.url, prefix: `order-early-${Date.now()}:` })],
  ['Redis, reserve_early: false', () => ({ kind: 'redis', url: redis!.url, prefix: `order-late-${Date.now()}:`, reserve_early: false })]
]

describe.each(stores.filter(([name]) => name === 'memory store' || runRedisTests))('budgets after the cache, rate limits before it (%s)', (_name, store) => {
  let gw: TestGateway
  beforeAll(async () => {
    gw = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      policies: {
        a: {
          cache: { when: 'always' },
          budgets: [{ scope: 'team', limit_usd: 0.0002, window: 'total', on_exceed: { downgrade_to: 'gpt-4o-mini' } }]
        },
        // a budget too: on Redis a request's reservation goes out with its rate check, and a refused one releases it
        b: { cache: { when: 'always', semantic: { enabled: true } }, rate_limits: [{ scope: 'key', rpm: 2 }], budgets: [{ scope: 'team', limit_usd: 1, window: 'day' }] },
        // gpt-4o's worst case at 1,000 output tokens ($0.01) does not fit, gpt-4o-mini's ($0.0006) does
        c: { cache: { when: 'always' }, budgets: [{ scope: 'team', limit_usd: 0.005, window: 'total', on_exceed: { downgrade_to: 'gpt-4o-mini' } }] },
        // room for every reservation: a hit's is taken, then released
        d: { cache: { when: 'always', semantic: { enabled: true } }, budgets: [{ scope: 'team', limit_usd: 1, window: 'day' }] },
        // the semantic layer alone: no exact read before the lookup
        e: { cache: { when: 'always', exact: { enabled: false }, semantic: { enabled: true } }, rate_limits: [{ scope: 'key', rpm: 1 }] }
      },
      config: { store: store(), keys: [{ key: TEAM_A_KEY, team: 'a' }, { key: TEAM_B_KEY, team: 'b' }, { key: KEY_C, team: 'c' }, { key: TEAM_D_KEY, team: 'd' }, { key: KEY_E, team: 'e' }] }
    })
  })
  afterAll(async () => {
    await gw?.close(0)
  })
  const client = (key: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 })
  const ask = (key: string, model: string, content: string, max_tokens = 100) =>
    client(key).chat.completions.create({ model, messages: [{ role: 'user', content }], max_tokens }).withResponse()

  const admin = async (path: string) => (await fetch(`${gw.url}${path}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).text()
  const teamBudget = async (team: string) => (JSON.parse(await admin(`/admin/budgets?team=${team}`)) as { data: { spent_usd: number; reserved_usd: number }[] }).data[0]!
  const rejections = async () => Number(/^sluice_budget_rejections_total\{team="a"[^}]*\} (\S+)$/m.exec(await admin('/metrics'))?.[1] ?? 0)

  it('serves an exact hit at $0 once the budget is spent, refuses a miss, and leaves nothing reserved', async () => {
    fake.script = () => ({ completionTokens: 100, promptTokens: 10 })
    // gpt-4o-mini: 100 output tokens at $0.6/M = $0.00006 each; three answers fit in $0.0002
    const first = await ask(TEAM_A_KEY, 'gpt-4o-mini', 'what is a sluice?')
    expect(first.response.headers.get('x-sluice-cache')).toBe('miss')
    await ask(TEAM_A_KEY, 'gpt-4o-mini', 'second question')
    await ask(TEAM_A_KEY, 'gpt-4o-mini', 'third question')
    const calls = fake.requests.length
    expect((await refusal(ask(TEAM_A_KEY, 'gpt-4o-mini', 'a fourth, new question'))).code).toBe('budget_exceeded')
    await expect.poll(() => teamBudget('a')).toMatchObject({ reserved_usd: 0 })
    const spent = (await teamBudget('a')).spent_usd
    expect(await rejections()).toBe(1)

    const hit = await ask(TEAM_A_KEY, 'gpt-4o-mini', 'what is a sluice?')
    expect(hit.response.headers.get('x-sluice-cache')).toBe('hit')
    expect(hit.response.headers.get('x-sluice-cost-usd')).toBe('0')
    expect(hit.data.choices[0]!.message.content).toBe(first.data.choices[0]!.message.content)
    // a replayed stream too
    const stream = await client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'what is a sluice?' }], max_tokens: 100, stream: true }).withResponse()
    expect(stream.response.headers.get('x-sluice-cache')).toBe('hit')
    let text = ''
    for await (const chunk of stream.data) text += chunk.choices[0]?.delta.content ?? ''
    expect(text).toBe(first.data.choices[0]!.message.content)
    expect(fake.requests.length).toBe(calls)
    // whatever a hit reserved on the way (Redis, reserve_early) is released, charged nothing, and was no refusal
    await expect.poll(() => teamBudget('a')).toMatchObject({ reserved_usd: 0, spent_usd: spent })
    expect(await rejections()).toBe(1)
  })

  it('charges exact and semantic hits nothing and leaves nothing reserved, where the budget has room', async () => {
    fake.script = () => ({ completionTokens: 20, promptTokens: 10 })
    const first = await ask(TEAM_D_KEY, 'gpt-4o-mini', 'How do I rotate the API keys of project kestrel?')
    expect(first.response.headers.get('x-sluice-cache')).toBe('miss')
    const cost = Number(first.response.headers.get('x-sluice-cost-usd'))
    await expect.poll(() => teamBudget('d')).toMatchObject({ reserved_usd: 0 })
    expect((await teamBudget('d')).spent_usd).toBeCloseTo(cost, 9)
    const calls = fake.requests.length
    const exact = await ask(TEAM_D_KEY, 'gpt-4o-mini', 'How do I rotate the API keys of project kestrel?')
    expect(exact.response.headers.get('x-sluice-cache')).toBe('hit')
    const semantic = await ask(TEAM_D_KEY, 'gpt-4o-mini', 'how do i rotate the api keys of project kestrel')
    expect(semantic.response.headers.get('x-sluice-cache')).toBe('semantic-hit')
    expect(fake.requests.length).toBe(calls)
    await expect.poll(() => teamBudget('d')).toMatchObject({ reserved_usd: 0 })
    expect((await teamBudget('d')).spent_usd).toBeCloseTo(cost, 9)
  })

  it('does not cache a downgraded answer under the model that was asked for', async () => {
    fake.script = (body: any) => ({ completionTokens: 5, promptTokens: 10, content: `answered by ${body.model}` })
    // gpt-4o at 1,000 output tokens cannot fit what is left: the budget moves the request to gpt-4o-mini
    const moved = await ask(KEY_C, 'gpt-4o', 'downgrade me', 1000)
    expect(moved.response.headers.get('x-sluice-route')).toMatch(/downgraded-from=gpt-4o/)
    expect(moved.data.choices[0]!.message.content).toBe('answered by gpt-4o-mini')
    // cache writes land in the background: give them time
    await new Promise((r) => setTimeout(r, 50))
    const again = await ask(KEY_C, 'gpt-4o', 'downgrade me', 1000)
    expect(again.response.headers.get('x-sluice-cache')).toBe('miss')
    expect(again.data.choices[0]!.message.content).toBe('answered by gpt-4o-mini')
    await expect.poll(() => teamBudget('c')).toMatchObject({ reserved_usd: 0 })
  })

  it('counts hits against the rate limit, and serves a refused request nothing from the cache', async () => {
    fake.script = () => ({ completionTokens: 5, promptTokens: 10 })
    const question = 'How do I rotate the API keys of project heron?'
    await ask(TEAM_B_KEY, 'gpt-4o-mini', question)
    const hit = await ask(TEAM_B_KEY, 'gpt-4o-mini', question)
    expect(hit.response.headers.get('x-sluice-cache')).toBe('hit')
    const calls = fake.requests.length
    // the exact entry, a semantic neighbour and a replayed stream are all there, and all refused
    const err = await refusal(ask(TEAM_B_KEY, 'gpt-4o-mini', question))
    expect(err.code).toBe('rate_limit_exceeded')
    expect(err.status).toBe(429)
    expect((await refusal(ask(TEAM_B_KEY, 'gpt-4o-mini', 'how do i rotate the api keys of project heron'))).code).toBe('rate_limit_exceeded')
    const stream = client(TEAM_B_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: question }], max_tokens: 100, stream: true })
    expect((await refusal(stream)).code).toBe('rate_limit_exceeded')
    expect((await refusal(ask(TEAM_B_KEY, 'gpt-4o-mini', 'a new question'))).code).toBe('rate_limit_exceeded')
    // no cache read at all: the verdict is read after the cache step
    const bypass = client(TEAM_B_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'uncached' }], max_tokens: 100 }, { headers: { 'x-sluice-cache': 'bypass' } })
    expect((await refusal(bypass)).code).toBe('rate_limit_exceeded')
    expect(fake.requests.length).toBe(calls)
    // one hit and one miss per layer were counted, nothing for the refused requests
    const metrics = await admin('/metrics')
    const count = (layer: string, result: string) => Number(new RegExp(`^sluice_cache_requests_total\\{layer="${layer}",result="${result}",team="b"\\} (\\S+)$`, 'm').exec(metrics)?.[1] ?? 0)
    expect([count('exact', 'hit'), count('exact', 'miss'), count('semantic', 'hit'), count('semantic', 'miss')]).toEqual([1, 1, 0, 1])
    // whatever the refused requests reserved on the way (Redis, reserve_early) is released
    await expect.poll(() => teamBudget('b')).toMatchObject({ reserved_usd: 0 })
  })

  it('serves a refused request no semantic hit where the semantic layer is the only one', async () => {
    fake.script = () => ({ completionTokens: 5, promptTokens: 10 })
    const first = await ask(KEY_E, 'gpt-4o-mini', 'How do I rotate the API keys of project ibis?')
    expect(first.response.headers.get('x-sluice-cache')).toBe('miss')
    const calls = fake.requests.length
    expect((await refusal(ask(KEY_E, 'gpt-4o-mini', 'how do i rotate the api keys of project ibis'))).code).toBe('rate_limit_exceeded')
    expect(fake.requests.length).toBe(calls)
  })
})
