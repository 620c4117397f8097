import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import OpenAI from 'openai'
import { stringify } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { worstCase } from '../src/budget/index.js'
import { loadConfig } from '../src/config/load.js'
import { countPromptTokens, promptTokenBound } from '../src/tokens.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { refusal } from './helpers/errors.js'
import { TEAM_A_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'

let fake: FakeOpenAI
let gw: TestGateway
beforeAll(async () => {
  fake = await startFakeOpenAI()
  gw = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, policies: { a: { budgets: [{ scope: 'team', limit_usd: 1, window: 'day' }] } } })
})
afterAll(async () => {
  await gw?.close(0)
  await fake?.close()
})

/** A prompt never counted before (its words are unique to this test run), with several bytes per token. */
const freshPrompt = (tag: string) =>
  Array.from({ length: 300 }, (_, i) => `${tag}${i} tokenization wéighs ünïcode 🚀 words`).join(' ')

describe('budget reservations without tokenizing the prompt', () => {
  it('bounds the exact count from above, and is exact for texts counted before', () => {
    for (const text of ['', 'a', 'hello world', freshPrompt('bound'), '🚀'.repeat(50), 'x'.repeat(5000)]) {
      const req = { messages: [{ role: 'user' as const, content: text }, { role: 'system' as const, content: text.slice(0, 20) }] }
      const bound = promptTokenBound(req, 'o200k_base')
      expect(bound).toBeGreaterThanOrEqual(countPromptTokens(req, 'o200k_base'))
      // counted once (above), the bound is the count itself
      expect(promptTokenBound(req, 'o200k_base')).toBe(countPromptTokens(req, 'o200k_base'))
    }
  })

  it('admits a request whose bound would not fit but whose exact worst case does, and refuses with the exact amount', async () => {
    const model = gw.gateway.config.models['gpt-4o-mini']!
    const messages = [{ role: 'user' as const, content: freshPrompt('admit') }]
    const request = { model: 'gpt-4o-mini', messages, max_tokens: 1 }
    const bound = worstCase(request, model, { bound: true }).usd
    const exact = worstCase(request, model).usd // counts the text: use a fresh prompt for the request below
    expect(bound).toBeGreaterThan(exact * 2)
    // a limit between the two: the bound alone would refuse
    const limit = (exact + bound) / 2
    writeFileSync(join(gw.dir, 'a.yaml'), stringify({ budgets: [{ scope: 'team', limit_usd: limit, window: 'total' }] }))
    gw.gateway.reload(await loadConfig(gw.file, {}))
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 })
    const fresh = [{ role: 'user' as const, content: freshPrompt('fresh') }]
    expect(promptTokenBound({ messages: fresh }, 'o200k_base')).toBeGreaterThan(countPromptTokens({ messages: fresh }, 'o200k_base') * 2)
    fake.script = () => ({ completionTokens: 1, promptTokens: 5 })
    const ok = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: fresh, max_tokens: 1 })
    expect(ok.choices[0]!.message.content).toBeTruthy()
    // a request that does not fit even exactly is refused, and the 429 names the exact worst case
    writeFileSync(join(gw.dir, 'a.yaml'), stringify({ budgets: [{ scope: 'team', limit_usd: exact / 2, window: 'day' }] }))
    gw.gateway.reload(await loadConfig(gw.file, {}))
    const refused = [{ role: 'user' as const, content: freshPrompt('refus') }]
    const err = await refusal(client.chat.completions.create({ model: 'gpt-4o-mini', messages: refused, max_tokens: 1 }))
    expect(err.code).toBe('budget_exceeded')
    const mayCost = Number(/may cost up to \$(\d+\.\d+)/.exec(err.message)![1])
    const refusedExact = worstCase({ ...request, messages: refused }, model).usd
    expect(mayCost).toBeCloseTo(refusedExact, 6)
    expect(mayCost).toBeLessThan(worstCase({ ...request, messages: [{ role: 'user', content: freshPrompt('other') }] }, model, { bound: true }).usd / 2)
  })

  it('counts a shadow budget as exceeded only when the exact worst case would exceed it', async () => {
    const model = gw.gateway.config.models['gpt-4o-mini']!
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: freshPrompt('shadowx') }], max_tokens: 1 }
    const bound = worstCase(request, model, { bound: true }).usd
    const exact = worstCase(request, model).usd
    const shadow = (limit: number) => ({ budgets: [{ scope: 'team', limit_usd: limit, window: 'total', shadow: true }, { scope: 'key', limit_usd: 1, window: 'day' }] })
    const exceeded = async () => {
      const text = await gw.gateway.metrics.registry.metrics()
      return text.split('\n').filter((l) => l.startsWith('sluice_budget_shadow_exceeded_total{')).reduce((n, l) => n + Number(l.split(' ').at(-1)), 0)
    }
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 })
    fake.script = () => ({ completionTokens: 1, promptTokens: 5 })
    // between the two: the bound alone would count it, the exact amount does not
    writeFileSync(join(gw.dir, 'a.yaml'), stringify(shadow((exact + bound) / 2)))
    gw.gateway.reload(await loadConfig(gw.file, {}))
    const before = await exceeded()
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: freshPrompt('shadowy') }], max_tokens: 1 })
    expect(await exceeded()).toBe(before)
    // below the exact amount: counted
    writeFileSync(join(gw.dir, 'a.yaml'), stringify(shadow(exact / 2)))
    gw.gateway.reload(await loadConfig(gw.file, {}))
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: freshPrompt('shadowz') }], max_tokens: 1 })
    expect(await exceeded()).toBe(before + 1)
  })
})
