import OpenAI from 'openai'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { FakeOpenAI } from './fakes/openai.js'
import { DEFAULT_KEYS, TEAM_A_KEY, TEAM_B_KEY, TEAM_C_KEY, TEAM_D_KEY, type TestGateway } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'

const CACHE_KEY = TEAM_C_KEY
const GUARD_KEY = TEAM_D_KEY

let stack: Stack
let openai: FakeOpenAI
let gw: TestGateway
const client = (key = TEAM_A_KEY) => stack.clientFor(key)

beforeAll(async () => {
  ;({ fake: openai, gw } = stack = await startStack({
    anthropic: true,
    policies: {
      a: {},
      // the worst case of any request is more than this
      b: { budgets: [{ scope: 'team', limit_usd: 0.000001, window: 'day' }] },
      c: { cache: {} },
      d: { guardrails: { input: { pii: { action: 'redact', reversible: true } } } }
    },
    config: {
      keys: [...DEFAULT_KEYS, { key: CACHE_KEY, team: 'c', user: 'carol' }, { key: GUARD_KEY, team: 'd', user: 'dan' }]
    }
  }))
})
afterAll(() => stack?.close())
beforeEach(() => {
  openai.script = undefined
})

const ledger = async (team: string) => {
  await gw.gateway.ledger.flush()
  return (await gw.gateway.store.queryLedger({ team })).filter((e) => e.surface === 'responses')
}
const lastSent = () => openai.requests.at(-1)!

/** A request shaped like Codex CLI's: freeform apply_patch, a function tool, reasoning, include, history items. */
const codexRequest = {
  model: 'gpt-4o-mini',
  instructions: 'You are Codex, a coding agent.',
  input: [
    { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Rename foo to bar in src/a.ts' }] },
    { type: 'reasoning', id: 'rs_prev', summary: [], encrypted_content: 'enc_previous_turn' },
    { type: 'custom_tool_call', call_id: 'call_patch_1', name: 'apply_patch', input: '*** Begin Patch\n*** Update File: src/a.ts\n-foo\n+bar\n*** End Patch' },
    { type: 'custom_tool_call_output', call_id: 'call_patch_1', output: 'Success. Updated src/a.ts' },
    { type: 'function_call', call_id: 'call_sh_1', name: 'shell', arguments: '{"command":["git","diff"]}' },
    { type: 'function_call_output', call_id: 'call_sh_1', output: '-foo\n+bar' }
  ],
  tools: [
    { type: 'function', name: 'shell', description: 'Run a command', strict: false, parameters: { type: 'object', properties: { command: { type: 'array', items: { type: 'string' } } }, required: ['command'] } },
    { type: 'custom', name: 'apply_patch', description: 'Apply a patch', format: { type: 'grammar', syntax: 'lark', definition: 'start: /.+/s' } },
    { type: 'local_shell' },
    { type: 'web_search' }
  ],
  tool_choice: 'auto',
  parallel_tool_calls: false,
  reasoning: { effort: 'medium', summary: 'auto' },
  store: false,
  include: ['reasoning.encrypted_content'],
  prompt_cache_key: 'codex-session-1'
} as const

describe('POST /v1/responses passed through to an OpenAI target', () => {
  it('sends the body as sent to /v1/responses and answers with the upstream Response, settled from its usage', async () => {
    openai.script = () => ({ content: 'Paris.', promptTokens: 1000, cachedTokens: 400, completionTokens: 20 })
    const { data, response } = await client()
      .responses.create({ model: 'gpt-4o-mini', instructions: 'Be brief.', input: 'capital of France?', max_output_tokens: 50, metadata: { run: 'x' } }, { headers: { 'x-sluice-session': 'pt-json' } })
      .withResponse()
    expect(lastSent().path).toBe('/v1/responses')
    expect(lastSent().body).toEqual({ model: 'gpt-4o-mini', instructions: 'Be brief.', input: 'capital of France?', max_output_tokens: 50, metadata: { run: 'x' } })
    expect(data.id).toBe(`resp_fake${openai.requests.length}`)
    expect(data.output_text).toBe('Paris.')
    expect(data.usage).toMatchObject({ input_tokens: 1000, output_tokens: 20, input_tokens_details: { cached_tokens: 400 } })
    const [entry] = (await ledger('a')).filter((e) => e.session === 'pt-json')
    expect(entry).toMatchObject({ provider: 'openai', model: 'openai/gpt-4o-mini', status: 'ok', stream: false, estimated: false, tokens: { input: 600, cached_input: 400, output: 20, cache_write: 0 } })
    // gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million
    expect(entry!.cost_usd).toBeCloseTo((600 * 0.15 + 400 * 0.075 + 20 * 0.6) / 1e6, 12)
    expect(Number(response.headers.get('x-sluice-cost-usd'))).toBeCloseTo(entry!.cost_usd, 9)
  })

  it('relays the upstream stream events as sent (openai SDK .stream) and settles the usage of response.completed', async () => {
    openai.script = () => ({ content: 'one two three four', promptTokens: 300, cachedTokens: 100, completionTokens: 4 })
    const stream = client().responses.stream({ model: 'gpt-4o-mini', input: 'count' }, { headers: { 'x-sluice-session': 'pt-stream' } })
    const events: OpenAI.Responses.ResponseStreamEvent[] = []
    stream.on('event', (e) => events.push(e))
    const final = await stream.finalResponse()
    expect(lastSent().body).toEqual({ model: 'gpt-4o-mini', input: 'count', stream: true })
    expect(final.id).toBe(`resp_fake${openai.requests.length}`)
    expect(final.output_text).toBe('one two three four')
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i))
    expect(events[0]!.type).toBe('response.created')
    expect(events.at(-1)!.type).toBe('response.completed')
    expect(events.filter((e) => e.type === 'response.output_text.delta')).toHaveLength(4)
    const [entry] = (await ledger('a')).filter((e) => e.session === 'pt-stream')
    expect(entry).toMatchObject({ stream: true, status: 'ok', estimated: false, tokens: { input: 200, cached_input: 100, output: 4 } })
    expect(entry!.cost_usd).toBeCloseTo((200 * 0.15 + 100 * 0.075 + 4 * 0.6) / 1e6, 12)
  })

  it('carries a Codex-shaped request (custom, local_shell and web_search tools, reasoning, include) and its custom tool call', async () => {
    openai.script = () => ({ reasoning: 'Need to check the patch.', customToolCalls: [{ name: 'apply_patch', input: '*** Begin Patch\n*** Add File: b.ts\n+x\n*** End Patch' }], promptTokens: 5000, cachedTokens: 4096, completionTokens: 60 })
    const res = await fetch(`${gw.url}/v1/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json', 'x-sluice-session': 'codex' },
      body: JSON.stringify({ ...codexRequest, stream: true })
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
    // a request the canonical view cannot fully carry is neither read from nor written to the cache
    expect(res.headers.get('x-sluice-cache')).toBe('bypass')
    const text = await res.text()
    // every event is written with its `event:` line, as OpenAI sends them
    const frames = text.trim().split('\n\n').map((f) => ({ event: f.split('\n')[0]!.slice('event: '.length), data: JSON.parse(f.split('\n')[1]!.slice('data: '.length)) }))
    expect(frames.every((f) => f.event === f.data.type)).toBe(true)
    expect(frames.map((f) => f.event)).toContain('response.custom_tool_call_input.delta')
    const completed = frames.at(-1)!.data
    expect(completed.type).toBe('response.completed')
    expect(completed.response.output.map((o: { type: string }) => o.type)).toEqual(['reasoning', 'custom_tool_call'])
    expect(completed.response.output[0].encrypted_content).toMatch(/^enc_/)
    expect(completed.response.output[1]).toMatchObject({ name: 'apply_patch', input: '*** Begin Patch\n*** Add File: b.ts\n+x\n*** End Patch' })
    // the upstream got every field as sent, the model replaced by the target's
    expect(lastSent().body).toEqual({ ...codexRequest, stream: true })
    const [entry] = (await ledger('a')).filter((e) => e.session === 'codex')
    expect(entry).toMatchObject({ status: 'ok', estimated: false, tokens: { input: 904, cached_input: 4096, output: 60 } })
  })

  it('works non-streaming with the openai SDK for a Codex-shaped request, tools and all', async () => {
    openai.script = () => ({ toolCalls: [{ name: 'shell', arguments: '{"command":["ls"]}' }], customToolCalls: [{ name: 'apply_patch', input: 'patch' }] })
    const res = await client().responses.create(codexRequest as unknown as OpenAI.Responses.ResponseCreateParamsNonStreaming)
    expect(res.output.map((o) => o.type)).toEqual(['function_call', 'custom_tool_call'])
    expect(lastSent().body.tools).toEqual(codexRequest.tools)
    expect(lastSent().body.input).toEqual(codexRequest.input)
  })

  it('accepts upstream state (previous_response_id, store) on a pass-through', async () => {
    const res = await client().responses.create({ model: 'gpt-4o-mini', previous_response_id: 'resp_prev', store: true, input: [{ type: 'function_call_output', call_id: 'c1', output: 'ok' }] })
    expect(res.status).toBe('completed')
    expect(lastSent().body).toMatchObject({ previous_response_id: 'resp_prev', store: true })
  })

  it('relays an upstream error in OpenAI shape', async () => {
    openai.script = () => ({ error: { status: 400, message: "Invalid value: 'bogus'.", code: 'invalid_value' } })
    const err = await client().responses.create({ model: 'gpt-4o-mini', input: 'x' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.BadRequestError)
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).message).toContain("Invalid value: 'bogus'.")
  })
})

describe('the same pipeline on /v1/responses', () => {
  it('refuses a request over budget with a 429 in OpenAI shape, before any upstream call', async () => {
    const before = openai.requests.length
    const err = await client(TEAM_B_KEY).responses.create({ model: 'gpt-4o-mini', input: 'hello', max_output_tokens: 1000 }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.RateLimitError)
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).code).toBe('budget_exceeded')
    expect(openai.requests.length).toBe(before)
  })

  it('answers a repeated request from the exact cache (x-sluice-cache: hit), JSON and stream', async () => {
    const body = { model: 'gpt-4o-mini', input: 'cache me please', temperature: 0 }
    const first = await client(CACHE_KEY).responses.create(body).withResponse()
    expect(first.response.headers.get('x-sluice-cache')).toBe('miss')
    const calls = openai.requests.length
    const second = await client(CACHE_KEY).responses.create(body).withResponse()
    expect(second.response.headers.get('x-sluice-cache')).toBe('hit')
    expect(second.data.output_text).toBe(first.data.output_text)
    expect(second.data.usage!.input_tokens).toBe(first.data.usage!.input_tokens)
    const stream = client(CACHE_KEY).responses.stream(body)
    const final = await stream.finalResponse()
    expect(final.output_text).toBe(first.data.output_text)
    expect(openai.requests.length).toBe(calls)
    const hits = (await ledger('c')).filter((e) => e.status === 'cache_hit')
    expect(hits).toHaveLength(2)
    expect(hits[0]!.saved_usd).toBeGreaterThan(0)
  })

  it('redacts PII before the upstream sees it and restores it in the answer', async () => {
    const { data, response } = await client(GUARD_KEY).responses.create({ model: 'gpt-4o-mini', input: 'mail jane.doe@example.com today' }).withResponse()
    const sent = JSON.stringify(lastSent().body)
    expect(sent).not.toContain('jane.doe@example.com')
    expect(sent).toContain('[EMAIL_1]')
    expect(data.output_text).toBe('You said: mail jane.doe@example.com today')
    expect(response.headers.get('x-sluice-guardrails')).toContain('pii.email')
    const stream = client(GUARD_KEY).responses.stream({ model: 'gpt-4o-mini', input: 'call jane@example.org' })
    const deltas: string[] = []
    stream.on('response.output_text.delta', (e) => deltas.push(e.delta))
    const final = await stream.finalResponse()
    expect(JSON.stringify(lastSent().body)).not.toContain('jane@example.org')
    expect(deltas.join('')).toBe('You said: call jane@example.org')
    expect(final.output_text).toBe('You said: call jane@example.org')
  })

  it('refuses rather than drops tools when a guardrail changed a request it cannot translate', async () => {
    const before = openai.requests.length
    const err = await client(GUARD_KEY)
      .responses.create({ ...codexRequest, input: [{ role: 'user', content: 'mail jane.doe@example.com' }] } as unknown as OpenAI.Responses.ResponseCreateParamsNonStreaming)
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(OpenAI.BadRequestError)
    expect((err as Error).message).toMatch(/no chat-completions form/)
    expect(openai.requests.length).toBe(before)
  })
})
