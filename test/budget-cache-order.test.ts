import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { refusal } from './helpers/errors.js'
import { TEAM_A_KEY, TEAM_B_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'

// Budgets sit after the caches (a hit costs nothing and reserves nothing); rate limits before them.
const KEY_C = 'sk-sluice-team-c-0000000000000003'
let fake: FakeOpenAI
let gw: TestGateway
beforeAll(async () => {
  fake = await startFakeOpenAI()
  gw = await startTestGateway({
    openaiUrl: fake.url,
    openaiKey: fake.apiKey,
    policies: {
      a: {
        cache: { when: 'always' },
        budgets: [{ scope: 'team', limit_usd: 0.0002, window: 'total', on_exceed: { downgrade_to: 'gpt-4o-mini' } }]
      },
      b: { cache: { when: 'always' }, rate_limits: [{ scope: 'key', rpm: 2 }] },
      // gpt-4o's worst case at 1,000 output tokens ($0.01) does not fit, gpt-4o-mini's ($0.0006) does
      c: { cache: { when: 'always' }, budgets: [{ scope: 'team', limit_usd: 0.005, window: 'total', on_exceed: { downgrade_to: 'gpt-4o-mini' } }] }
    },
    config: { keys: [{ key: TEAM_A_KEY, team: 'a' }, { key: TEAM_B_KEY, team: 'b' }, { key: KEY_C, team: 'c' }] }
  })
})
afterAll(async () => {
  await gw?.close(0)
  await fake?.close()
})

const client = (key: string) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries: 0 })
const ask = (key: string, model: string, content: string, max_tokens = 100) =>
  client(key).chat.completions.create({ model, messages: [{ role: 'user', content }], max_tokens }).withResponse()

describe('budgets after the cache, rate limits before it', () => {
  it('serves an exact hit at $0 once the budget is spent, and refuses a miss', async () => {
    fake.script = () => ({ completionTokens: 100, promptTokens: 10 })
    // gpt-4o-mini: 100 output tokens at $0.6/M = $0.00006 each; three answers fit in $0.0002
    const first = await ask(TEAM_A_KEY, 'gpt-4o-mini', 'what is a sluice?')
    expect(first.response.headers.get('x-sluice-cache')).toBe('miss')
    await ask(TEAM_A_KEY, 'gpt-4o-mini', 'second question')
    await ask(TEAM_A_KEY, 'gpt-4o-mini', 'third question')
    const calls = fake.requests.length
    expect((await refusal(ask(TEAM_A_KEY, 'gpt-4o-mini', 'a fourth, new question'))).code).toBe('budget_exceeded')
    const hit = await ask(TEAM_A_KEY, 'gpt-4o-mini', 'what is a sluice?')
    expect(hit.response.headers.get('x-sluice-cache')).toBe('hit')
    expect(hit.response.headers.get('x-sluice-cost-usd')).toBe('0')
    expect(hit.data.choices[0]!.message.content).toBe(first.data.choices[0]!.message.content)
    expect(fake.requests.length).toBe(calls)
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
  })

  it('counts hits against the rate limit', async () => {
    fake.script = () => ({ completionTokens: 5, promptTokens: 10 })
    await ask(TEAM_B_KEY, 'gpt-4o-mini', 'same question')
    const hit = await ask(TEAM_B_KEY, 'gpt-4o-mini', 'same question')
    expect(hit.response.headers.get('x-sluice-cache')).toBe('hit')
    const err = await refusal(ask(TEAM_B_KEY, 'gpt-4o-mini', 'same question'))
    expect(err.code).toBe('rate_limit_exceeded')
  })
})
