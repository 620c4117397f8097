import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { countTextTokens, shouldPreloadEncodings, tokenizerLoaded } from '../src/tokens.js'
import { startStack, type Stack } from './helpers/stack.js'

const withTpm = { a: { rate_limits: [{ tpm: 1000 }] }, b: { rate_limits: [] as { rpm?: number; tpm?: number }[] } }
const withoutTpm = { a: { rate_limits: [{ rpm: 60 }] }, b: { rate_limits: [] as { rpm?: number; tpm?: number }[] } }

describe('tokenizer.preload', () => {
  it('auto preloads only when some team has a tpm limit; always and never are what they say', () => {
    expect(shouldPreloadEncodings({ tokenizer: { preload: 'auto' }, policies: withTpm })).toBe(true)
    expect(shouldPreloadEncodings({ tokenizer: { preload: 'auto' }, policies: withoutTpm })).toBe(false)
    expect(shouldPreloadEncodings({ tokenizer: { preload: 'always' }, policies: withoutTpm })).toBe(true)
    expect(shouldPreloadEncodings({ tokenizer: { preload: 'never' }, policies: withTpm })).toBe(false)
  })
})

// One file, one module instance of src/tokens.ts (vitest isolates test files), so the order below matters.
describe('tiktoken loads on first exact count, not for a budgeted, request-rate-limited request that fits its bound', () => {
  let stack: Stack
  beforeAll(async () => {
    // an rpm limit counts requests, not tokens: it needs no count either
    stack = await startStack({ policies: { a: { budgets: [{ scope: 'team', limit_usd: 100, window: 'day' }], rate_limits: [{ scope: 'key', rpm: 600 }] } } })
  })
  afterAll(() => stack?.close())

  it('serves and settles a budgeted, rpm-limited chat request without loading tiktoken', async () => {
    const { data, response } = await stack.client.chat.completions
      .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there, a short prompt' }] })
      .withResponse()
    expect(data.choices[0]!.message.content).toBeTruthy()
    // reserved, then settled at the provider's usage: a cost and a remaining budget came back
    expect(Number(response.headers.get('x-sluice-cost-usd'))).toBeGreaterThan(0)
    expect(Number(response.headers.get('x-sluice-budget-remaining-usd'))).toBeLessThan(100)
    expect(response.headers.get('x-ratelimit-remaining-requests')).toBe('599')
    expect(tokenizerLoaded()).toBe(false)
  })

  it('loads it when something needs the exact count', () => {
    expect(countTextTokens('hello world', 'o200k_base')).toBe(2)
    expect(tokenizerLoaded()).toBe(true)
  })
})
