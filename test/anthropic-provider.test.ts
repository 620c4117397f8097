import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import Anthropic from '@anthropic-ai/sdk'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { cachePolicySchema } from '../src/cache/schema.js'
import { placeCacheBreakpoints } from '../src/cache/prompt-caching.js'
import { providerSchema } from '../src/config/schema.js'
import { UpstreamError } from '../src/errors.js'
import {
  addCacheBreakpoint,
  chunksToAnthropicEvents,
  createAnthropicProvider,
  formatAnthropicSSE,
  type AnthropicProviderOptions
} from '../src/providers/anthropic/index.js'
import type { Provider } from '../src/providers/types.js'
import type { ChatChunk, ChatRequest } from '../src/types.js'
import { anthropicErrorReply, fakeTokens, startFakeAnthropic, type FakeAnthropic } from './fakes/anthropic.js'

let fake: FakeAnthropic
const providers: Provider[] = []

beforeAll(async () => {
  fake = await startFakeAnthropic()
})
afterEach(() => {
  fake.setScript(undefined)
  fake.requests.length = 0
})
afterAll(async () => {
  await Promise.all(providers.map((p) => p.close()))
  await fake.close()
})

function provider(overrides: Record<string, unknown> = {}, options?: AnthropicProviderOptions): Provider {
  const config = providerSchema.parse({ kind: 'anthropic', base_url: fake.url, api_key: fake.apiKey, ...overrides })
  if (config.kind !== 'anthropic') throw new Error('unreachable')
  const p = createAnthropicProvider('anthropic', config, undefined, options)
  providers.push(p)
  return p
}

const call = () => ({ signal: new AbortController().signal })
const weather = { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } } } }
const time = { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: {} } } }

async function collect(it: AsyncIterable<ChatChunk>): Promise<ChatChunk[]> {
  const out: ChatChunk[] = []
  for await (const c of it) out.push(c)
  return out
}

/** Reassemble streamed tool calls the way OpenAI SDKs do: by index, name from the first delta, arguments concatenated. */
function reassemble(chunks: ChatChunk[]): { id?: string; name?: string; arguments: string }[] {
  const calls: { id?: string; name?: string; arguments: string }[] = []
  for (const c of chunks) {
    for (const t of c.choices[0]?.delta.tool_calls ?? []) {
      const slot = (calls[t.index!] ??= { arguments: '' })
      if (t.id) slot.id = t.id
      if (t.function?.name) slot.name = t.function.name
      slot.arguments += t.function?.arguments ?? ''
    }
  }
  return calls
}

describe('anthropic provider against the fake upstream', () => {
  it('sends x-api-key, anthropic-version and a translated body; returns a chat completion', async () => {
    const req: ChatRequest = { model: 'claude-sonnet-4-5', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }], user: 'alice' }
    const completion = await provider().chat(req, call())
    expect(completion).toMatchObject({
      object: 'chat.completion',
      model: 'claude-sonnet-4-5',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Echo: hello there' }, finish_reason: 'stop' }]
    })
    expect(completion.id).toMatch(/^msg_/)
    expect(completion.usage!.completion_tokens).toBe(3)
    expect(completion.usage!.prompt_tokens).toBeGreaterThan(0)

    const sent = fake.requests[0]!
    expect(sent.path).toBe('/v1/messages')
    expect(sent.headers['x-api-key']).toBe(fake.apiKey)
    expect(sent.headers['anthropic-version']).toBe('2023-06-01')
    expect(JSON.parse(sent.raw)).toEqual({
      model: 'claude-sonnet-4-5',
      max_tokens: 4096,
      system: 'Be brief.',
      messages: [{ role: 'user', content: 'hello there' }],
      metadata: { user_id: 'alice' }
    })
  })

  it('accepts a base_url ending in /v1 and extra headers', async () => {
    await provider({ base_url: `${fake.url}/v1`, headers: { 'anthropic-beta': 'prompt-caching-2024-07-31' } }).chat({ model: 'm', messages: [{ role: 'user', content: 'x' }] }, call())
    expect(fake.requests[0]!.path).toBe('/v1/messages')
    expect(fake.requests[0]!.headers['anthropic-beta']).toBe('prompt-caching-2024-07-31')
  })

  it('streams role, text deltas, a finish chunk and a usage chunk', async () => {
    const stream = await provider().chatStream({ model: 'm', messages: [{ role: 'user', content: 'one two three' }] }, call())
    const chunks = await collect(stream)
    expect(JSON.parse(fake.requests[0]!.raw).stream).toBe(true)
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' })
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Echo: one two three')
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBe(4)
    const finish = chunks.at(-2)!
    expect(finish.choices[0]!.finish_reason).toBe('stop')
    const usage = chunks.at(-1)!
    expect(usage.choices).toEqual([])
    expect(usage.usage).toMatchObject({ completion_tokens: 4, prompt_tokens_details: { cached_tokens: 0 }, cache_creation_input_tokens: 0 })
  })

  it('maps max_tokens and stop sequences to finish reasons', async () => {
    const p = provider()
    const cut = await p.chat({ model: 'm', max_tokens: 2, messages: [{ role: 'user', content: 'a b c d e' }] }, call())
    expect(cut.choices[0]).toMatchObject({ message: { content: 'Echo: a ' }, finish_reason: 'length' })
    const stopped = await collect(await p.chatStream({ model: 'm', stop: ' c', messages: [{ role: 'user', content: 'a b c d' }] }, call()))
    expect(stopped.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Echo: a b')
    expect(stopped.at(-2)!.choices[0]!.finish_reason).toBe('stop')
    expect(JSON.parse(fake.requests[1]!.raw).stop_sequences).toEqual([' c'])
  })

  it('streams parallel tool calls whose argument fragments reassemble into valid JSON', async () => {
    const req: ChatRequest = { model: 'm', tools: [weather, time], messages: [{ role: 'user', content: 'use get_weather and get_time for Paris' }] }
    const chunks = await collect(await provider().chatStream(req, call()))
    const calls = reassemble(chunks)
    expect(calls).toHaveLength(2)
    expect(calls[0]).toMatchObject({ id: 'toolu_fake0_get_weather', name: 'get_weather' })
    expect(JSON.parse(calls[0]!.arguments)).toEqual({ city: 'use get_weather and get_time for Paris', days: 1 })
    expect(calls[1]).toMatchObject({ id: 'toolu_fake1_get_time', name: 'get_time' })
    expect(JSON.parse(calls[1]!.arguments)).toEqual({})
    expect(chunks.filter((c) => c.choices[0]?.delta.tool_calls?.[0]?.index === 0).length).toBeGreaterThan(2)
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls')
  })

  it('honours tool_choice and parallel_tool_calls=false, and completes a tool round trip the upstream accepts', async () => {
    const p = provider()
    const req: ChatRequest = {
      model: 'm',
      tools: [weather, time],
      tool_choice: { type: 'function', function: { name: 'get_time' } },
      parallel_tool_calls: false,
      messages: [{ role: 'user', content: 'what now?' }]
    }
    const first = await p.chat(req, call())
    expect(JSON.parse(fake.requests[0]!.raw).tool_choice).toEqual({ type: 'tool', name: 'get_time', disable_parallel_tool_use: true })
    expect(first.choices[0]!.finish_reason).toBe('tool_calls')
    const toolCall = first.choices[0]!.message.tool_calls![0]!
    expect(toolCall.function).toEqual({ name: 'get_time', arguments: '{}' })

    const second = await p.chat(
      { model: 'm', tools: [weather, time], messages: [...req.messages, first.choices[0]!.message, { role: 'tool', tool_call_id: toolCall.id, content: '12:00' }] },
      call()
    )
    expect(second.choices[0]).toMatchObject({ message: { content: 'Tool said: 12:00' }, finish_reason: 'stop' })
  })

  it('reports prompt cache writes then reads when the request carries cache_control', async () => {
    const p = provider()
    const longSystem = 'You are an expert. '.repeat(200)
    const req: ChatRequest = {
      model: 'm',
      messages: [
        { role: 'system', content: [{ type: 'text', text: longSystem, cache_control: { type: 'ephemeral' } }] },
        { role: 'user', content: 'question one' }
      ]
    }
    const first = await p.chat(req, call())
    expect(first.usage!.cache_creation_input_tokens).toBe(950)
    expect(first.usage!.prompt_tokens_details!.cached_tokens).toBe(0)

    const chunks = await collect(await p.chatStream({ ...req, messages: [req.messages[0]!, { role: 'user', content: 'question two' }] }, call()))
    const usage = chunks.at(-1)!.usage!
    expect(usage.prompt_tokens_details!.cached_tokens).toBe(950)
    expect(usage.cache_creation_input_tokens).toBe(0)
    // OpenAI semantics: prompt_tokens counts the cached prefix too (the fake counts four characters a token)
    expect(usage.prompt_tokens).toBe(fakeTokens(longSystem + 'question two'))
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens)
  })

  it('applies transformBody last, so a cache breakpoint helper can be plugged in', async () => {
    const p = provider({}, { transformBody: (b) => addCacheBreakpoint(b, 'system'), defaultMaxTokens: 1024 })
    const c = await p.chat({ model: 'm', messages: [{ role: 'system', content: 'Stable prefix '.repeat(50) }, { role: 'user', content: 'hi' }] }, call())
    const sent = JSON.parse(fake.requests[0]!.raw)
    expect(sent.max_tokens).toBe(1024)
    expect(sent.system).toEqual([{ type: 'text', text: 'Stable prefix '.repeat(50), cache_control: { type: 'ephemeral' } }])
    expect(c.usage!.cache_creation_input_tokens).toBeGreaterThan(0)
  })

  it("plugs in the cache step's placeCacheBreakpoints: the second turn of a conversation reads the cached prefix", async () => {
    const policy = cachePolicySchema.parse({}).provider
    const p = provider({}, { transformBody: (b) => placeCacheBreakpoints(b, policy) })
    const system = 'You are a meticulous analyst. '.repeat(200)
    const turn1: ChatRequest = { model: 'm', messages: [{ role: 'system', content: system }, { role: 'user', content: 'first question' }] }
    const first = await p.chat(turn1, call())
    expect(first.usage!.cache_creation_input_tokens).toBeGreaterThan(1024)
    const turn2: ChatRequest = { ...turn1, messages: [...turn1.messages, first.choices[0]!.message, { role: 'user', content: 'second question' }] }
    const second = await p.chat(turn2, call())
    expect(second.usage!.prompt_tokens_details!.cached_tokens).toBeGreaterThanOrEqual(first.usage!.cache_creation_input_tokens!)
    expect(JSON.parse(fake.requests[1]!.raw).system[0].cache_control).toEqual({ type: 'ephemeral' })
  })
})

describe('anthropic provider errors', () => {
  const req: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'x' }] }
  const fail = (p: Promise<unknown>) => p.then(() => expect.unreachable('should have failed'), (e: unknown) => e as UpstreamError)

  it('passes a bad key on as 401 with the upstream message', async () => {
    const err = await fail(provider({ api_key: 'wrong' }).chat(req, call()))
    expect(err).toBeInstanceOf(UpstreamError)
    expect(err).toMatchObject({ status: 401, message: 'invalid x-api-key', type: 'authentication_error', retryable: false })
  })

  it('marks "prompt is too long" as a context_length failure', async () => {
    const small = await startFakeAnthropic({ contextWindow: 5 })
    try {
      const config = providerSchema.parse({ kind: 'anthropic', base_url: small.url, api_key: small.apiKey })
      const p = createAnthropicProvider('small', config as Extract<typeof config, { kind: 'anthropic' }>)
      providers.push(p)
      const err = await fail(p.chat({ model: 'm', messages: [{ role: 'user', content: 'a prompt longer than five tokens' }] }, call()))
      expect(err).toMatchObject({ status: 400, kind: 'context_length', retryable: false })
      expect(err.message).toMatch(/^prompt is too long: \d+ tokens > 5 maximum$/)
    } finally {
      await small.close()
    }
  })

  it('maps 429 with retry-after, 529 overloaded and 500 to retryable errors', async () => {
    const p = provider()
    fake.setScript(() => anthropicErrorReply(429, 'rate_limit_error', 'Number of request tokens has exceeded your per-minute rate limit', { 'retry-after': '7' }))
    expect(await fail(p.chat(req, call()))).toMatchObject({ status: 429, kind: 'rate_limit', retryable: true, retryAfterMs: 7000, type: 'rate_limit_error' })
    fake.setScript(() => anthropicErrorReply(529, 'overloaded_error', 'Overloaded'))
    expect(await fail(p.chatStream(req, call()))).toMatchObject({ status: 529, message: 'Overloaded', code: 'overloaded_error', retryable: true })
    fake.setScript(() => anthropicErrorReply(500, 'api_error', 'Internal server error'))
    expect(await fail(p.chat(req, call()))).toMatchObject({ status: 500, message: 'Internal server error', retryable: true })
  })

  it('throws an UpstreamError when an error event arrives mid-stream', async () => {
    fake.setScript(() => ({
      events: [
        { type: 'message_start', message: { id: 'msg_x', type: 'message', role: 'assistant', model: 'm', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 3, output_tokens: 1 } } },
        { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
        { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hel' } },
        { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }
      ]
    }))
    const seen: string[] = []
    const err = await fail(
      (async () => {
        for await (const c of await provider().chatStream(req, call())) seen.push(String(c.choices[0]?.delta.content ?? ''))
      })()
    )
    expect(seen.join('')).toBe('Hel')
    expect(err).toMatchObject({ status: 529, message: 'Overloaded', retryable: true })
  })

  it('aborting mid-stream closes the upstream request', async () => {
    const slow = await startFakeAnthropic({ eventDelayMs: 30 })
    try {
      const config = providerSchema.parse({ kind: 'anthropic', base_url: slow.url, api_key: slow.apiKey })
      const p = createAnthropicProvider('slow', config as Extract<typeof config, { kind: 'anthropic' }>)
      providers.push(p)
      const ac = new AbortController()
      const stream = await p.chatStream({ model: 'm', messages: [{ role: 'user', content: 'word '.repeat(200) }] }, { signal: ac.signal })
      let received = 0
      const err = await fail(
        (async () => {
          for await (const _ of stream) if (++received === 3) ac.abort()
        })()
      )
      expect(err).toMatchObject({ status: 499, kind: 'aborted' })
      expect(received).toBeLessThan(10)
      expect(await slow.requests[0]!.done).toBe('aborted')
      expect(slow.requests[0]!.aborted).toBe(true)

      // A consumer that just stops reading must release the upstream request too.
      const again = await p.chatStream({ model: 'm', messages: [{ role: 'user', content: 'word '.repeat(200) }] }, call())
      for await (const _ of again) break
      expect(await slow.requests[1]!.done).toBe('aborted')
    } finally {
      await slow.close()
    }
  })
})

describe('wire fidelity, checked with the official @anthropic-ai/sdk', () => {
  it('the fake speaks the Messages API the SDK expects (JSON, SSE, errors)', async () => {
    const client = new Anthropic({ apiKey: fake.apiKey, baseURL: fake.url, maxRetries: 0 })
    const msg = await client.messages.create({ model: 'm', max_tokens: 50, messages: [{ role: 'user', content: 'hi there' }] })
    expect(msg.content).toEqual([{ type: 'text', text: 'Echo: hi there' }])
    const final = await client.messages
      .stream({ model: 'm', max_tokens: 50, tools: [{ name: 'get_weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }], messages: [{ role: 'user', content: 'get_weather Oslo' }] })
      .finalMessage()
    expect(final.stop_reason).toBe('tool_use')
    expect(final.content[1]).toMatchObject({ type: 'tool_use', name: 'get_weather', input: { city: 'get_weather Oslo' } })
    fake.setScript(() => anthropicErrorReply(529, 'overloaded_error', 'Overloaded'))
    const err = await client.messages.create({ model: 'm', max_tokens: 5, messages: [{ role: 'user', content: 'x' }] }).catch((e) => e)
    expect(err).toBeInstanceOf(Anthropic.APIError)
    expect(err.status).toBe(529)
    expect(err.error).toMatchObject({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })
  })

  it('chunksToAnthropicEvents output is read correctly by the SDK stream accumulator', async () => {
    // Canonical chunks as another provider would stream them, rendered as /v1/messages SSE.
    const upstream = await provider().chatStream({ model: 'm', tools: [weather], messages: [{ role: 'user', content: 'call get_weather please' }] }, call())
    const server = createServer(async (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      for await (const ev of chunksToAnthropicEvents(upstream, { model: 'claude-sonnet' })) res.write(formatAnthropicSSE(ev))
      res.end()
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    try {
      const client = new Anthropic({ apiKey: 'k', baseURL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, maxRetries: 0 })
      const final = await client.messages.stream({ model: 'claude-sonnet', max_tokens: 50, messages: [{ role: 'user', content: 'x' }] }).finalMessage()
      expect(final.model).toBe('claude-sonnet')
      expect(final.stop_reason).toBe('tool_use')
      expect(final.content[0]).toMatchObject({ type: 'text', text: 'Calling get_weather.' })
      expect(final.content[1]).toMatchObject({ type: 'tool_use', id: 'toolu_fake0_get_weather', name: 'get_weather', input: { city: 'call get_weather please', days: 1 } })
      expect(final.usage.output_tokens).toBeGreaterThan(0)
      expect(final.usage.input_tokens).toBeGreaterThan(0)
    } finally {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    }
  })
})
