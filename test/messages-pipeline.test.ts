import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { FakeAnthropic } from './fakes/anthropic.js'
import { DEFAULT_KEYS, TEAM_A_KEY, TEAM_B_KEY, TEAM_C_KEY, type TestGateway } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'

const CACHE_KEY = TEAM_C_KEY

let stack: Stack<true>
let anthropic: FakeAnthropic
let gw: TestGateway
const client = (key = TEAM_A_KEY) => new Anthropic({ baseURL: gw.url, apiKey: key, maxRetries: 0 })

beforeAll(async () => {
  ;({ anthropic, gw } = stack = await startStack({
    anthropic: true,
    policies: {
      a: {},
      // the worst case of any request is more than this
      b: { budgets: [{ scope: 'team', limit_usd: 0.000001, window: 'day' }] },
      c: { cache: {} }
    },
    config: { keys: [...DEFAULT_KEYS, { key: CACHE_KEY, team: 'c', user: 'carol' }] }
  }))
})
afterAll(() => stack?.close())
beforeEach(() => stack.reset())

describe('the same pipeline on /v1/messages', () => {
  it('refuses a request over budget with a 429 in Anthropic shape, before any upstream call', async () => {
    const before = anthropic.requests.length
    const err = await client(TEAM_B_KEY)
      .messages.create({ model: 'claude-sonnet', max_tokens: 1000, messages: [{ role: 'user', content: 'hello' }] })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Anthropic.RateLimitError)
    const e = err as InstanceType<typeof Anthropic.RateLimitError>
    expect(e.status).toBe(429)
    expect(e.error).toMatchObject({ type: 'error', error: { type: 'rate_limit_error', message: expect.stringMatching(/budget/) } })
    expect(anthropic.requests.length).toBe(before)
    // a translated target is refused the same way
    const viaOpenAI = await client(TEAM_B_KEY)
      .messages.create({ model: 'gpt-4o-mini', max_tokens: 1000, messages: [{ role: 'user', content: 'hello' }] })
      .catch((x: unknown) => x)
    expect(viaOpenAI).toBeInstanceOf(Anthropic.RateLimitError)
  })

  it('answers a repeated request from the exact cache (x-sluice-cache: hit), JSON and stream', async () => {
    const body = { model: 'claude-sonnet', max_tokens: 64, temperature: 0, messages: [{ role: 'user' as const, content: 'cache this message' }] }
    const first = await client(CACHE_KEY).messages.create(body).withResponse()
    expect(first.response.headers.get('x-sluice-cache')).toBe('miss')
    const calls = anthropic.requests.length
    const second = await client(CACHE_KEY).messages.create(body).withResponse()
    expect(second.response.headers.get('x-sluice-cache')).toBe('hit')
    expect(second.data.content).toEqual(first.data.content)
    const stream = client(CACHE_KEY).messages.stream(body)
    const final = await stream.finalMessage()
    expect(final.content).toEqual(first.data.content)
    expect(anthropic.requests.length).toBe(calls)
    await gw.gateway.ledger.flush()
    const hits = (await gw.gateway.store.queryLedger({ team: 'c' })).filter((x) => x.status === 'cache_hit' && x.surface === 'messages')
    expect(hits).toHaveLength(2)
  })
})

describe('Claude Code against /v1/messages?beta=true', () => {
  const betas = ['claude-code-20250219', 'interleaved-thinking-2025-05-14', 'fine-grained-tool-streaming-2025-05-14']

  it('streams a beta message (x-api-key, several anthropic-beta values) and forwards the betas, not the key', async () => {
    // the SDK's beta namespace calls /v1/messages?beta=true with the betas joined in one anthropic-beta header, as Claude Code does
    const stream = client().beta.messages.stream(
      { model: 'claude-sonnet', max_tokens: 128, betas, system: [{ type: 'text', text: 'You are Claude Code.' }], messages: [{ role: 'user', content: 'hi from claude code' }] },
      { headers: { 'x-app': 'cli', 'anthropic-dangerous-direct-browser-access': 'true' } }
    )
    const final = await stream.finalMessage()
    expect(final.content[0]).toMatchObject({ type: 'text', text: 'Echo: hi from claude code' })
    const sent = anthropic.requests.at(-1)!
    expect(sent.path).toBe('/v1/messages')
    expect(sent.headers['anthropic-beta']).toBe(betas.join(','))
    expect(sent.headers['x-api-key']).toBe(anthropic.apiKey)
    expect(JSON.stringify(sent.headers)).not.toContain(TEAM_A_KEY)
  })

  it('answers the raw Claude Code request shape with fetch, x-api-key and the beta query', async () => {
    const res = await fetch(`${gw.url}/v1/messages?beta=true`, {
      method: 'POST',
      headers: { 'x-api-key': TEAM_A_KEY, 'anthropic-version': '2023-06-01', 'anthropic-beta': betas.join(','), 'content-type': 'application/json', 'user-agent': 'claude-cli/1.0.0 (external, cli)' },
      body: JSON.stringify({ model: 'claude-sonnet', max_tokens: 64, messages: [{ role: 'user', content: 'raw' }], metadata: { user_id: 'user_abc_account__session_1' } })
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('request-id')).toBeTruthy()
    expect(await res.json()).toMatchObject({ type: 'message', role: 'assistant', content: [{ type: 'text', text: 'Echo: raw' }] })
  })

  it('counts tokens at /v1/messages/count_tokens?beta=true (forwarded to Anthropic with the betas)', async () => {
    const counted = await client().beta.messages.countTokens({ model: 'claude-sonnet', betas, messages: [{ role: 'user', content: 'count these tokens please' }] })
    expect(counted.input_tokens).toBeGreaterThan(0)
    const sent = anthropic.requests.at(-1)!
    expect(sent.path).toBe('/v1/messages/count_tokens')
    // the SDK adds its own token-counting beta to the client's
    expect(String(sent.headers['anthropic-beta']).split(',')).toEqual(expect.arrayContaining(betas))
    // a translated target is estimated locally, beta query and all
    const res = await fetch(`${gw.url}/v1/messages/count_tokens?beta=true`, {
      method: 'POST',
      headers: { 'x-api-key': TEAM_A_KEY, 'anthropic-version': '2023-06-01', 'anthropic-beta': betas.join(','), 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count these tokens please' }] })
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('x-sluice-token-count')).toBe('estimate')
    expect((await res.json()).input_tokens).toBeGreaterThan(0)
  })

  it('answers an unknown key at the beta paths with 401 in Anthropic shape', async () => {
    const err = await new Anthropic({ baseURL: gw.url, apiKey: 'sk-sluice-nope', maxRetries: 0 }).beta.messages
      .create({ model: 'claude-sonnet', max_tokens: 10, betas, messages: [{ role: 'user', content: 'x' }] })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError)
    expect((err as InstanceType<typeof Anthropic.AuthenticationError>).error).toMatchObject({ type: 'error', error: { type: 'authentication_error' } })
  })
})
