import Anthropic from '@anthropic-ai/sdk'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startFakeAnthropic, type FakeAnthropic } from './fakes/anthropic.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { TEAM_A_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'

let anthropic: FakeAnthropic
let openai: FakeOpenAI
let gw: TestGateway
let guarded: TestGateway
let client: Anthropic

beforeAll(async () => {
  anthropic = await startFakeAnthropic()
  openai = await startFakeOpenAI()
  const base = { openaiUrl: openai.url, openaiKey: openai.apiKey, anthropicUrl: anthropic.url, anthropicKey: anthropic.apiKey }
  gw = await startTestGateway(base)
  // a team whose output guard masks emails: the stream is rebuilt from the guarded chunks
  guarded = await startTestGateway({ ...base, policies: { a: { guardrails: { output: { pii: { types: ['email'] } } } } } })
  // the 1.x SDK sends x-api-key; Bearer is checked separately
  client = new Anthropic({ baseURL: gw.url, apiKey: TEAM_A_KEY, maxRetries: 0 })
})
afterAll(async () => {
  await gw.close(0)
  await guarded.close(0)
  await anthropic.close()
  await openai.close()
})
beforeEach(() => {
  anthropic.setScript(undefined)
  openai.script = undefined
})

const ledger = async (g: TestGateway) => {
  await g.gateway.ledger.flush()
  return g.gateway.store.queryLedger({ team: 'a' })
}

/** A Claude Code-like request: system blocks and tools with cache_control, a thinking turn with its signature. */
const cachedRequest = (model: string): Anthropic.MessageCreateParamsNonStreaming => ({
  model,
  max_tokens: 256,
  system: [{ type: 'text', text: 'You are a careful coding agent. '.repeat(20), cache_control: { type: 'ephemeral' } }],
  tools: [{ name: 'read_file', description: 'Read a file', input_schema: { type: 'object', properties: { path: { type: 'string' } } }, cache_control: { type: 'ephemeral' } }],
  thinking: { type: 'enabled', budget_tokens: 1024 },
  messages: [
    { role: 'user', content: 'Look at README.md' },
    {
      role: 'assistant',
      content: [
        { type: 'thinking', thinking: 'I should read it.', signature: 'sig-abc123' },
        { type: 'tool_use', id: 'toolu_01', name: 'read_file', input: { path: 'README.md' } }
      ]
    },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01', content: '# Sluice', cache_control: { type: 'ephemeral' } }, { type: 'text', text: 'Summarise it.' }] }
  ]
})

describe('POST /v1/messages to an Anthropic target (native pass-through)', () => {
  it('forwards the client body as sent, model replaced, so prompt caching keeps hitting', async () => {
    const req = cachedRequest('claude-sonnet')
    const first = await client.messages.create(req, { headers: { 'anthropic-beta': 'interleaved-thinking-2025-05-14' } })
    const sent = anthropic.requests.at(-1)!
    expect(JSON.parse(sent.raw)).toEqual({ ...req, model: 'claude-sonnet-4-5' })
    expect(sent.headers['anthropic-beta']).toBe('interleaved-thinking-2025-05-14')
    expect(sent.headers['x-api-key']).toBe(anthropic.apiKey)
    expect(first.content[0]).toMatchObject({ type: 'text', text: 'Tool said: # Sluice' })
    expect(first.usage.cache_creation_input_tokens).toBeGreaterThan(0)
    const second = await client.messages.create(req)
    expect(second.usage.cache_read_input_tokens).toBe(first.usage.cache_creation_input_tokens)
    const entries = (await ledger(gw)).filter((e) => e.surface === 'messages')
    expect(entries.length).toBeGreaterThanOrEqual(2)
    expect(entries.at(-1)).toMatchObject({ provider: 'anthropic', alias: 'claude-sonnet', status: 'ok', estimated: false })
    expect(entries.at(-1)!.tokens.cached_input).toBe(second.usage.cache_read_input_tokens)
  })

  it('returns thinking blocks and signatures as Anthropic sent them (non-stream)', async () => {
    anthropic.setScript(() => ({ content: [{ type: 'thinking', thinking: 'Hmm.', signature: 'sig-xyz' }, { type: 'text', text: 'Done.' }] }))
    const msg = await client.messages.create({ model: 'claude-sonnet', max_tokens: 100, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'hi' }] })
    expect(msg.content).toEqual([{ type: 'thinking', thinking: 'Hmm.', signature: 'sig-xyz' }, { type: 'text', text: 'Done.' }])
    expect(msg.id).toMatch(/^msg_/)
  })

  it('relays the upstream stream events, thinking and signature deltas included; finalMessage works', async () => {
    anthropic.setScript((r) => ({
      events: [
        { type: 'message_start', message: { id: 'msg_t1', type: 'message', role: 'assistant', model: r.body.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 7, output_tokens: 1 } } },
        { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } },
        { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Let me think.' } },
        { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig-stream' } },
        { type: 'content_block_stop', index: 0 },
        { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } },
        { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Hello ' } },
        { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'there' } },
        { type: 'content_block_stop', index: 1 },
        { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 5 } },
        { type: 'message_stop' }
      ]
    }))
    const stream = client.messages.stream({ model: 'claude-sonnet', max_tokens: 100, thinking: { type: 'enabled', budget_tokens: 1024 }, messages: [{ role: 'user', content: 'hi' }] })
    const types: string[] = []
    stream.on('streamEvent', (ev) => types.push(ev.type))
    const final = await stream.finalMessage()
    expect(final.content).toEqual([{ type: 'thinking', thinking: 'Let me think.', signature: 'sig-stream' }, { type: 'text', text: 'Hello there', citations: null }].map((b) => (b.type === 'text' ? expect.objectContaining({ type: 'text', text: 'Hello there' }) : b)))
    expect(final.usage).toMatchObject({ input_tokens: 7, output_tokens: 5 })
    expect(types).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop'])
    expect(JSON.parse(anthropic.requests.at(-1)!.raw).stream).toBe(true)
    const entry = (await ledger(gw)).at(-1)!
    expect(entry).toMatchObject({ surface: 'messages', stream: true, status: 'ok', estimated: false })
    expect(entry.tokens).toMatchObject({ input: 7, output: 5 })
  })

  it('sends the translated request when a step changed the conversation (input guard redaction)', async () => {
    const g = await startTestGateway({
      anthropicUrl: anthropic.url,
      anthropicKey: anthropic.apiKey,
      policies: { a: { guardrails: { input: { pii: { types: ['email'] } } } } }
    })
    try {
      const c = new Anthropic({ baseURL: g.url, apiKey: TEAM_A_KEY, maxRetries: 0 })
      await c.messages.create({ model: 'claude-sonnet', max_tokens: 50, messages: [{ role: 'user', content: 'mail bob@example.com please' }] })
      const raw = anthropic.requests.at(-1)!.raw
      expect(raw).not.toContain('bob@example.com')
    } finally {
      await g.close(0)
    }
  })

  it('rebuilds the stream from guarded chunks when the team has guardrails, masking included', async () => {
    anthropic.setScript(() => ({ content: [{ type: 'text', text: 'Write to alice@example.com today' }] }))
    const c = new Anthropic({ baseURL: guarded.url, apiKey: TEAM_A_KEY, maxRetries: 0 })
    const final = await c.messages.stream({ model: 'claude-sonnet', max_tokens: 50, messages: [{ role: 'user', content: 'who?' }] }).finalMessage()
    const text = final.content.map((b) => (b.type === 'text' ? b.text : '')).join('')
    expect(text).not.toContain('alice@example.com')
    expect(text).toContain('Write to')
    const nonStream = await c.messages.create({ model: 'claude-sonnet', max_tokens: 50, messages: [{ role: 'user', content: 'who?' }] })
    expect(JSON.stringify(nonStream.content)).not.toContain('alice@example.com')
  })

  it('forwards count_tokens to Anthropic targets', async () => {
    const res = await client.messages.countTokens({ model: 'claude-sonnet', messages: [{ role: 'user', content: 'count these words please' }] }).withResponse()
    expect(res.data.input_tokens).toBeGreaterThan(0)
    expect(res.response.headers.get('x-sluice-token-count')).toBe('exact')
    expect(anthropic.requests.at(-1)!.path).toBe('/v1/messages/count_tokens')
    expect(anthropic.requests.at(-1)!.body.model).toBe('claude-sonnet-4-5')
  })
})

describe('POST /v1/messages to an OpenAI target (translated)', () => {
  it('answers non-stream in the Messages shape with system and images translated', async () => {
    const msg = await client.messages.create({
      model: 'gpt-4o-mini',
      max_tokens: 64,
      system: 'Be brief.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hello there' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } }] }]
    })
    expect(msg).toMatchObject({ type: 'message', role: 'assistant', stop_reason: 'end_turn' })
    expect(msg.content[0]).toMatchObject({ type: 'text', text: expect.stringMatching(/^You said: /) })
    expect(msg.usage.input_tokens).toBeGreaterThan(0)
    const sent = openai.requests.at(-1)!.body
    expect(sent.messages[0]).toEqual({ role: 'system', content: 'Be brief.' })
    expect(sent.messages[1].content[1]).toEqual({ type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } })
    expect(sent.max_tokens).toBe(64)
  })

  it('streams Anthropic events with event: lines in the exact order', async () => {
    const res = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json', 'anthropic-version': '2099-01-01' },
      body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'one two' }] })
    })
    expect(res.status).toBe(200)
    const text = await res.text()
    const events = [...text.matchAll(/^event: (\S+)\ndata: (.+)$/gm)].map((m) => ({ event: m[1], data: JSON.parse(m[2]!) }))
    for (const e of events) expect(e.data.type).toBe(e.event)
    const names = events.map((e) => e.event).filter((e) => e !== 'content_block_delta')
    expect(names).toEqual(['message_start', 'ping', 'content_block_start', 'content_block_stop', 'message_delta', 'message_stop'])
    expect(events.find((e) => e.event === 'message_delta')!.data.usage.output_tokens).toBeGreaterThan(0)
    expect(events.filter((e) => e.event === 'content_block_delta').map((e) => e.data.delta.text).join('')).toBe('You said: one two')
  })

  it('runs a tool round trip through messages.stream()', async () => {
    openai.script = (body) => (body.messages.some((m: { role: string }) => m.role === 'tool') ? { content: 'It is sunny.' } : { toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }] })
    const tools: Anthropic.Tool[] = [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }]
    const first = await client.messages.stream({ model: 'gpt-4o-mini', max_tokens: 100, tools, messages: [{ role: 'user', content: 'Weather in Paris?' }] }).finalMessage()
    expect(first.stop_reason).toBe('tool_use')
    const call = first.content.find((b): b is Anthropic.ToolUseBlock => b.type === 'tool_use')!
    expect(call).toMatchObject({ name: 'get_weather', input: { city: 'Paris' } })
    expect(openai.requests.at(-1)!.body.tools[0]).toMatchObject({ type: 'function', function: { name: 'get_weather', parameters: tools[0]!.input_schema } })
    const second = await client.messages.create({
      model: 'gpt-4o-mini',
      max_tokens: 100,
      tools,
      messages: [
        { role: 'user', content: 'Weather in Paris?' },
        { role: 'assistant', content: first.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'sunny, 24C' }] }
      ]
    })
    expect(second.content).toEqual([expect.objectContaining({ type: 'text', text: 'It is sunny.' })])
    const sent = openai.requests.at(-1)!.body.messages
    expect(sent[1].tool_calls[0]).toMatchObject({ id: call.id, function: { name: 'get_weather', arguments: '{"city":"Paris"}' } })
    expect(sent[2]).toEqual({ role: 'tool', tool_call_id: call.id, content: 'sunny, 24C' })
    const entries = (await ledger(gw)).filter((e) => e.surface === 'messages' && e.provider === 'openai')
    expect(entries.length).toBeGreaterThanOrEqual(2)
  })

  it('drops thinking blocks and estimates count_tokens locally', async () => {
    const res = await client.messages.countTokens({ model: 'gpt-4o-mini', system: 'Be brief.', messages: [{ role: 'user', content: 'count these words please' }] }).withResponse()
    expect(res.response.headers.get('x-sluice-token-count')).toBe('estimate')
    expect(res.data.input_tokens).toBeGreaterThan(5)
    await client.messages.create(cachedRequest('gpt-4o-mini'))
    const sent = JSON.stringify(openai.requests.at(-1)!.body)
    expect(sent).not.toContain('sig-abc123')
    expect(sent).not.toContain('thinking')
  })
})

describe('errors and auth on /v1/messages', () => {
  it('answers every error in Anthropic shape', async () => {
    const bad = new Anthropic({ baseURL: gw.url, apiKey: 'sk-wrong', maxRetries: 0 })
    const auth = await bad.messages.create({ model: 'claude-sonnet', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e)
    expect(auth).toBeInstanceOf(Anthropic.AuthenticationError)
    expect((auth as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'authentication_error' } })

    const invalid = await client.messages.create({ model: 'claude-sonnet', messages: [{ role: 'user', content: 'x' }] } as unknown as Anthropic.MessageCreateParamsNonStreaming).catch((e: unknown) => e)
    expect(invalid).toBeInstanceOf(Anthropic.BadRequestError)
    expect((invalid as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('max_tokens') } })

    const missing = await client.messages.create({ model: 'nope', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e)
    expect(missing).toBeInstanceOf(Anthropic.NotFoundError)
    expect((missing as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ error: { type: 'not_found_error' } })
  })

  it('passes an upstream overload through with its type', async () => {
    anthropic.setScript(() => ({ error: { status: 529, type: 'overloaded_error', message: 'Overloaded' } }))
    const err = await client.messages.create({ model: 'claude-sonnet', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e)
    expect((err as InstanceType<typeof Anthropic.APIError>).status).toBe(529)
    expect((err as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ error: { type: 'overloaded_error', message: 'Overloaded' } })
  })

  it('accepts Authorization: Bearer (authToken) as well as x-api-key', async () => {
    const bearer = new Anthropic({ baseURL: gw.url, authToken: TEAM_A_KEY, apiKey: null, maxRetries: 0 })
    const msg = await bearer.messages.create({ model: 'gpt-4o-mini', max_tokens: 10, messages: [{ role: 'user', content: 'bearer' }] })
    expect(msg.content[0]).toMatchObject({ type: 'text', text: 'You said: bearer' })
  })
})

describe('client disconnect on /v1/messages streams', () => {
  it('settles the attempt in the ledger as aborted when the client leaves mid-stream', async () => {
    const slow = await startFakeAnthropic({ eventDelayMs: 30 })
    const g = await startTestGateway({ anthropicUrl: slow.url, anthropicKey: slow.apiKey })
    try {
      const ac = new AbortController()
      const res = await fetch(`${g.url}/v1/messages`, {
        method: 'POST',
        signal: ac.signal,
        headers: { 'x-api-key': TEAM_A_KEY, 'content-type': 'application/json', 'x-sluice-session': 'leave-early' },
        body: JSON.stringify({ model: 'claude-sonnet', max_tokens: 200, stream: true, messages: [{ role: 'user', content: 'a b c d e f g h i j k l m n o p' }] })
      })
      const reader = res.body!.getReader()
      await reader.read()
      ac.abort()
      await expect(slow.requests.at(-1)!.done).resolves.toBe('aborted')
      let entry
      for (let i = 0; i < 100 && !entry; i++) {
        await g.gateway.ledger.flush()
        entry = (await g.gateway.store.queryLedger({ session: 'leave-early' }))[0]
        if (!entry) await new Promise((r) => setTimeout(r, 20))
      }
      expect(entry).toMatchObject({ surface: 'messages', status: 'aborted', stream: true })
      expect(entry!.tokens.input).toBeGreaterThan(0)
    } finally {
      await g.close(0)
      await slow.close()
    }
  })
})
