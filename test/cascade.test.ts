import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { routingPolicySchema } from '../src/routing/schema.js'
import { startFakeOpenAI, type FakeOpenAI, type FakeOpenAIReply } from './fakes/openai.js'
import { startRoutingGateway, user } from './helpers/routing.js'

let fake: FakeOpenAI
let env: Awaited<ReturnType<typeof startRoutingGateway>>

const routing = {
  retry: { retries: 0 },
  routes: {
    cascade3: {
      cascade: [
        { route: 'cheap', checks: { min_mean_logprob: -0.5 } },
        { route: 'mid', checks: { refusal: true } },
        { route: 'strong' }
      ]
    },
    'min-token': { cascade: [{ route: 'cheap', checks: { min_token_logprob: -1 } }, { route: 'strong' }] },
    plain: { cascade: [{ route: 'cheap' }, { route: 'strong' }] },
    judged: { cascade: [{ route: 'cheap', checks: { judge: { target: 'judge', min_score: 7 } } }, { route: 'strong' }] },
    capped: { cascade: [{ route: 'cheap', max_tokens: 5 }, { route: 'strong' }] },
    routed: { cascade: [{ route: 'cheap' }, { route: 'strong' }], router: { kind: 'score', threshold: 0.5 } },
    'resilient-top': { cascade: [{ route: 'cheap' }, { route: { fallback: ['dead', 'strong'] } }] }
  }
}

// team b: the same plain cascade with its own bounds for cheap tiers
const routingB = {
  retry: { retries: 3, base_ms: 10, max_ms: 20 },
  cascade_defaults: { max_tokens: 64, timeout_ms: 1000 },
  routes: { plain: { cascade: [{ route: 'cheap' }, { route: 'strong' }] } }
}

beforeAll(async () => {
  fake = await startFakeOpenAI()
  env = await startRoutingGateway(fake, routing, { policyB: { routing: routingB } })
})
afterAll(async () => {
  await env.gw.close(0)
  await fake.close()
})
beforeEach(() => {
  fake.script = undefined
})

/** Script replies per upstream model name. */
const by = (replies: Record<string, FakeOpenAIReply>) => (body: any) => replies[body.model]
const sent = (model: string) => fake.requests.filter((r) => r.body?.model === model).at(-1)?.body

describe('cascade', () => {
  it('accepts a confident cheap answer: one call, logprobs asked upstream but not returned to the client', async () => {
    fake.script = by({ 'cheap-model': { content: 'Paris is the capital.', logprob: -0.05 } })
    const { data, response } = await env.client.chat.completions.create({ model: 'cascade3', messages: user('capital of France?') }).withResponse()
    expect(data.choices[0]!.message.content).toBe('Paris is the capital.')
    expect(data.choices[0]!.logprobs ?? null).toBeNull()
    expect(response.headers.get('x-sluice-route')).toBe('cheap')
    expect(response.headers.get('x-sluice-attempts')).toBe('1')
    expect(response.headers.get('x-sluice-cascade-tier')).toBe('0')
    expect(sent('cheap-model').logprobs).toBe(true)
  })

  it('escalates on a low mean logprob and on a refusal; the ledger has every attempt with its cost', async () => {
    fake.script = by({ 'cheap-model': { content: 'maybe Lyon', logprob: -1.4 }, 'mid-model': { content: "I'm sorry, but I can't help with that." } })
    const { data, response } = await env.client.chat.completions.create({ model: 'cascade3', messages: user('capital of France?') }).withResponse()
    expect(data.choices[0]!.message.content).toBe('You said: capital of France?')
    expect(response.headers.get('x-sluice-route')).toBe('strong')
    expect(response.headers.get('x-sluice-attempts')).toBe('3')
    expect(response.headers.get('x-sluice-escalations')).toBe('0:low_mean_logprob,1:refusal')
    const entries = await env.attemptsOf(response.headers.get('x-sluice-request-id'))
    expect(entries.map((e) => [e.model, e.status])).toEqual([
      ['openai/cheap-model', 'rejected'],
      ['openai/mid-model', 'rejected'],
      ['openai/strong-model', 'ok']
    ])
    expect(entries[0]!.error).toMatch(/low_mean_logprob/)
    expect(entries[1]!.error).toMatch(/refusal/)
    expect(entries.map((e) => e.reason)).toEqual(['cascade tier 0', 'cascade tier 1', 'cascade tier 2'])
    for (const e of entries) expect(e.cost_usd).toBeGreaterThan(0)
    const total = entries.reduce((s, e) => s + e.cost_usd, 0)
    expect(Number(response.headers.get('x-sluice-cost-usd'))).toBeCloseTo(total, 9)
  })

  it('escalates on a low minimum token logprob', async () => {
    fake.script = by({ 'cheap-model': { content: 'one two', logprob: -1.5 } })
    const { response } = await env.client.chat.completions.create({ model: 'min-token', messages: user('q') }).withResponse()
    expect(response.headers.get('x-sluice-escalations')).toBe('0:low_token_logprob')
    fake.script = by({ 'cheap-model': { content: 'one two', logprob: -0.5 } })
    const ok = await env.client.chat.completions.create({ model: 'min-token', messages: user('q') }).withResponse()
    expect(ok.response.headers.get('x-sluice-route')).toBe('cheap')
  })

  it('escalates an "I don\'t know" and an empty answer', async () => {
    fake.script = by({ 'cheap-model': { content: "I don't know the answer to that." } })
    const a = await env.client.chat.completions.create({ model: 'plain', messages: user('q') }).withResponse()
    expect(a.response.headers.get('x-sluice-escalations')).toBe('0:refusal')
    fake.script = by({ 'cheap-model': { content: '' } })
    const b = await env.client.chat.completions.create({ model: 'plain', messages: user('q') }).withResponse()
    expect(b.response.headers.get('x-sluice-escalations')).toBe('0:empty')
  })

  it('escalates invalid JSON in json mode and accepts valid JSON', async () => {
    fake.script = by({ 'cheap-model': { content: 'Sure! {"a": 1' } })
    const bad = await env.client.chat.completions.create({ model: 'plain', messages: user('json please'), response_format: { type: 'json_object' } }).withResponse()
    expect(bad.response.headers.get('x-sluice-escalations')).toBe('0:invalid_json')
    expect(JSON.parse(bad.data.choices[0]!.message.content!)).toEqual({ answer: 42 })
    fake.script = by({ 'cheap-model': { content: '```json\n{"a": 1}\n```' } })
    const good = await env.client.chat.completions.create({ model: 'plain', messages: user('json please'), response_format: { type: 'json_object' } }).withResponse()
    expect(good.response.headers.get('x-sluice-route')).toBe('cheap')
  })

  it('escalates JSON that does not match the requested schema', async () => {
    const response_format = {
      type: 'json_schema' as const,
      json_schema: { name: 'a', schema: { type: 'object', properties: { answer: { type: 'integer' } }, required: ['answer'], additionalProperties: false } }
    }
    fake.script = by({ 'cheap-model': { content: '{"answer": "forty-two"}' } })
    const bad = await env.client.chat.completions.create({ model: 'plain', messages: user('q'), response_format }).withResponse()
    expect(bad.response.headers.get('x-sluice-escalations')).toBe('0:invalid_json')
    const entries = await env.attemptsOf(bad.response.headers.get('x-sluice-request-id'))
    expect(entries[0]!.error).toMatch(/answer: must be integer/)
    fake.script = by({ 'cheap-model': { content: '{"answer": 42}' } })
    const good = await env.client.chat.completions.create({ model: 'plain', messages: user('q'), response_format }).withResponse()
    expect(good.response.headers.get('x-sluice-route')).toBe('cheap')
  })

  it('escalates tool calls whose arguments do not match the tool schema, or that name no declared tool', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } }]
    const cases: [FakeOpenAIReply['toolCalls'], string | null][] = [
      [[{ name: 'get_weather', arguments: '{"city": 5}' }], '0:invalid_tool_args'],
      [[{ name: 'get_weather', arguments: '{"city": "Par' }], '0:invalid_tool_args'],
      [[{ name: 'launch_rockets', arguments: '{}' }], '0:invalid_tool_args'],
      [[{ name: 'get_weather', arguments: '{"city": "Paris"}' }], null]
    ]
    for (const [toolCalls, escalation] of cases) {
      fake.script = by({ 'cheap-model': { toolCalls } })
      const { data, response } = await env.client.chat.completions.create({ model: 'plain', messages: user('weather in Paris?'), tools }).withResponse()
      expect(response.headers.get('x-sluice-escalations')).toBe(escalation)
      if (!escalation) expect((data.choices[0]!.message.tool_calls![0] as any).function.arguments).toBe('{"city": "Paris"}')
    }
  })

  it('asks a judge model and escalates a low grade; the judge call is in the ledger too', async () => {
    fake.script = by({ 'cheap-model': { content: 'An answer.' }, 'judge-model': { content: '3' } })
    const low = await env.client.chat.completions.create({ model: 'judged', messages: user('q') }).withResponse()
    expect(low.response.headers.get('x-sluice-escalations')).toBe('0:judge')
    const entries = await env.attemptsOf(low.response.headers.get('x-sluice-request-id'))
    expect(entries.map((e) => [e.model, e.status, e.reason])).toEqual([
      ['openai/cheap-model', 'rejected', 'cascade tier 0'],
      ['openai/judge-model', 'ok', 'cascade tier 0 judge'],
      ['openai/strong-model', 'ok', 'cascade tier 1']
    ])
    expect(sent('judge-model').messages[1].content).toContain('An answer.')
    fake.script = by({ 'cheap-model': { content: 'An answer.' }, 'judge-model': { content: '9' } })
    const high = await env.client.chat.completions.create({ model: 'judged', messages: user('q') }).withResponse()
    expect(high.response.headers.get('x-sluice-route')).toBe('cheap')
    expect(high.response.headers.get('x-sluice-attempts')).toBe('2')
  })

  it('bounds a cheap tier with max_tokens and escalates an answer it cut off', async () => {
    fake.script = by({ 'cheap-model': { content: 'a b c d e', finishReason: 'length' } })
    const { response } = await env.client.chat.completions.create({ model: 'capped', messages: user('q') }).withResponse()
    expect(sent('cheap-model').max_tokens).toBe(5)
    expect(response.headers.get('x-sluice-escalations')).toBe('0:truncated')
    expect(sent('strong-model').max_tokens).toBeUndefined()
  })

  it('bounds a cheap tier that sets no max_tokens by the default (1024), never above the client, and leaves the last tier alone', async () => {
    expect(routingPolicySchema.parse({}).cascade_defaults).toEqual({ max_tokens: 1024, timeout_ms: 30_000 })
    await env.client.chat.completions.create({ model: 'plain', messages: user('q') })
    expect(sent('cheap-model').max_tokens).toBe(1024)
    await env.client.chat.completions.create({ model: 'plain', messages: user('q'), max_completion_tokens: 100 })
    expect(sent('cheap-model').max_completion_tokens).toBe(100)
    fake.script = by({ 'cheap-model': { content: 'cut', finishReason: 'length' } })
    const { response } = await env.client.chat.completions.create({ model: 'plain', messages: user('q') }).withResponse()
    expect(response.headers.get('x-sluice-escalations')).toBe('0:truncated')
    expect(sent('strong-model').max_tokens).toBeUndefined()
  })

  it("applies the policy's cascade_defaults: a cheap tier is capped and timed out by them (retries included), then escalates", async () => {
    await env.clientB.chat.completions.create({ model: 'plain', messages: user('q') })
    expect(sent('cheap-model').max_tokens).toBe(64)
    fake.script = by({ 'cheap-model': { content: 'too slow', delayMs: 4000 } })
    const since = fake.requests.length
    const started = Date.now()
    const { data, response } = await env.clientB.chat.completions.create({ model: 'plain', messages: user('q') }).withResponse()
    expect(Date.now() - started).toBeLessThan(3500)
    expect(data.choices[0]!.message.content).toBe('You said: q')
    expect(response.headers.get('x-sluice-escalations')).toBe('0:error')
    // the timeout bounds the tier, not each try: no retry of the timed-out cheap call (3 are configured)
    expect(fake.requests.slice(since).map((r) => r.body.model)).toEqual(['cheap-model', 'strong-model'])
    await env.gw.gateway.ledger.flush()
    const entries = (await env.gw.gateway.store.queryLedger({ team: 'b' })).filter((e) => e.request_id === response.headers.get('x-sluice-request-id')).sort((x, y) => x.attempt - y.attempt)
    expect(entries.map((e) => [e.model, e.status])).toEqual([
      ['openai/cheap-model', 'error'],
      ['openai/strong-model', 'ok']
    ])
    expect(entries[0]!.error).toMatch(/time/i)
  })

  it('escalates when a cheap tier fails, and the last tier may itself be a fallback chain', async () => {
    fake.script = by({ 'cheap-model': { error: { status: 500, message: 'boom' } } })
    const { response } = await env.client.chat.completions.create({ model: 'resilient-top', messages: user('q') }).withResponse()
    expect(response.headers.get('x-sluice-escalations')).toBe('0:error')
    expect(response.headers.get('x-sluice-route')).toBe('strong')
    const entries = await env.attemptsOf(response.headers.get('x-sluice-request-id'))
    expect(entries.map((e) => [e.provider, e.status])).toEqual([
      ['openai', 'error'],
      ['dead', 'error'],
      ['openai', 'ok']
    ])
  })

  it('the score router sends a hard-looking prompt straight to the strong tier', async () => {
    const before = fake.requests.length
    const hard = 'Prove that for every integer n > 1, the polynomial x^n - 2 is irreducible. Explain step by step why 3 * 7 = 21 implies the equation 2x + 5 = 19 has solution x = 7, and compute sqrt(144) * 12.'
    const { response } = await env.client.chat.completions.create({ model: 'routed', messages: user(hard) }).withResponse()
    expect(Number(response.headers.get('x-sluice-difficulty'))).toBeGreaterThanOrEqual(0.5)
    expect(response.headers.get('x-sluice-route')).toBe('strong')
    expect(fake.requests.slice(before).map((r) => r.body.model)).toEqual(['strong-model'])
    const easy = await env.client.chat.completions.create({ model: 'routed', messages: user('hi there') }).withResponse()
    expect(Number(easy.response.headers.get('x-sluice-difficulty'))).toBeLessThan(0.5)
    expect(easy.response.headers.get('x-sluice-route')).toBe('cheap')
  })
})

describe('cascade with streaming clients', () => {
  const collect = async (stream: AsyncIterable<any>) => {
    let text = ''
    let usage: any
    let finish: string | undefined
    for await (const c of stream) {
      text += c.choices[0]?.delta?.content ?? ''
      finish ??= c.choices[0]?.finish_reason ?? undefined
      if (c.usage) usage = c.usage
    }
    return { text, usage, finish }
  }

  it('generates the cheap tier whole, then streams the accepted answer', async () => {
    fake.script = by({ 'cheap-model': { content: 'the quick brown fox', logprob: -0.1 } })
    const { data, response } = await env.client.chat.completions.create({ model: 'cascade3', messages: user('q'), stream: true, stream_options: { include_usage: true } }).withResponse()
    const { text, usage, finish } = await collect(data)
    expect(text).toBe('the quick brown fox')
    expect(finish).toBe('stop')
    expect(usage.completion_tokens).toBe(4)
    expect(response.headers.get('x-sluice-route')).toBe('cheap')
    expect(sent('cheap-model').stream).toBeFalsy()
  })

  it('streams the last tier live after the cheap tiers were rejected', async () => {
    fake.script = by({ 'cheap-model': { content: 'hmm', logprob: -3 }, 'mid-model': { content: "I don't know." } })
    const { data, response } = await env.client.chat.completions.create({ model: 'cascade3', messages: user('one two'), stream: true, stream_options: { include_usage: true } }).withResponse()
    const { text, usage } = await collect(data)
    expect(text).toBe('You said: one two')
    expect(response.headers.get('x-sluice-route')).toBe('strong')
    expect(sent('mid-model').stream).toBeFalsy()
    expect(sent('strong-model').stream).toBe(true)
    const entries = await env.attemptsOf(response.headers.get('x-sluice-request-id'))
    expect(entries.map((e) => e.status)).toEqual(['rejected', 'rejected', 'ok'])
    // the usage chunk carries the cost of the whole request, rejected tiers included
    const total = entries.reduce((s, e) => s + e.cost_usd, 0)
    expect(usage.sluice_cost_usd).toBeCloseTo(total, 9)
  })

  it('counts escalations and acceptances in metrics', async () => {
    const text = await (await fetch(`${env.gw.url}/metrics`)).text()
    expect(text).toMatch(/sluice_cascade_escalations_total\{alias="cascade3",tier="0",check="low_mean_logprob"\} [1-9]/)
    expect(text).toMatch(/sluice_cascade_escalations_total\{alias="cascade3",tier="1",check="refusal"\} [1-9]/)
    expect(text).toMatch(/sluice_cascade_accepted_total\{alias="cascade3",tier="0"\} [1-9]/)
    expect(text).toMatch(/sluice_routing_decisions_total\{alias="routed",target="strong",reason="router"\} 1/)
  })
})
