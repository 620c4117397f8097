import OpenAI from 'openai'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { FakeAnthropic } from './fakes/anthropic.js'
import type { FakeOpenAI } from './fakes/openai.js'
import type { TestGateway } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'

let stack: Stack<true>
let openai: FakeOpenAI
let anthropic: FakeAnthropic
let gw: TestGateway
let client: OpenAI

beforeAll(async () => {
  // gpt-4o-mini goes through the pass-through (test/responses-passthrough.test.ts); these tests use the same fake
  // as a chat-only OpenAI-compatible server (`responses_api: false`), which gets the translation
  ;({ fake: openai, anthropic, gw, client } = stack = await startStack({
    anthropic: true,
    config: ({ fake, anthropic }) => ({
      providers: {
        openai: { kind: 'openai', base_url: fake.url, api_key: fake.apiKey, responses_api: false },
        anthropic: { kind: 'anthropic', base_url: anthropic!.url, api_key: anthropic!.apiKey }
      },
      models: { 'gpt-4o-mini': { provider: 'openai', model: 'gpt-4o-mini' }, 'claude-sonnet': { provider: 'anthropic', model: 'claude-sonnet-4-5' } }
    })
  }))
})
afterAll(() => stack?.close())
beforeEach(() => stack.reset())

const entries = async () => {
  await gw.gateway.ledger.flush()
  return (await gw.gateway.store.queryLedger({ team: 'a' })).filter((e) => e.surface === 'responses')
}

const weatherTool: OpenAI.Responses.FunctionTool = {
  type: 'function',
  name: 'get_weather',
  description: 'Weather for a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  strict: true
}

describe('POST /v1/responses translated for chat-only targets, through the openai SDK', () => {
  it('answers text with instructions, usage and output_text', async () => {
    const { data, response } = await client.responses
      .create({ model: 'gpt-4o-mini', instructions: 'Be brief.', input: 'hello there', max_output_tokens: 40, temperature: 0 }, { headers: { 'x-sluice-session': 'resp-sess' } })
      .withResponse()
    expect(data).toMatchObject({ object: 'response', status: 'completed', store: false, instructions: 'Be brief.' })
    expect(data.id).toMatch(/^resp_/)
    expect(data.output_text).toBe('You said: hello there')
    expect(data.output[0]).toMatchObject({ type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'You said: hello there' }] })
    expect(data.usage!.input_tokens).toBeGreaterThan(0)
    expect(data.usage!.total_tokens).toBe(data.usage!.input_tokens + data.usage!.output_tokens)
    const sent = openai.requests.at(-1)!.body
    expect(sent.messages).toEqual([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }])
    expect(sent).toMatchObject({ model: 'gpt-4o-mini', max_completion_tokens: 40, temperature: 0 })
    expect(Number(response.headers.get('x-sluice-cost-usd'))).toBeGreaterThan(0)
    const [entry] = (await entries()).filter((e) => e.session === 'resp-sess')
    expect(entry).toMatchObject({ surface: 'responses', provider: 'openai', alias: 'gpt-4o-mini', status: 'ok', stream: false })
  })

  it('round-trips a function call with function_call / function_call_output items', async () => {
    openai.script = (body) => (body.messages.some((m: { role: string }) => m.role === 'tool') ? { content: 'Sunny in Paris.' } : { toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }] })
    const first = await client.responses.create({ model: 'gpt-4o-mini', input: [{ role: 'user', content: 'Weather in Paris?' }], tools: [weatherTool], tool_choice: 'auto' })
    const call = first.output.find((o): o is OpenAI.Responses.ResponseFunctionToolCall => o.type === 'function_call')!
    expect(call).toMatchObject({ name: 'get_weather', arguments: '{"city":"Paris"}', status: 'completed' })
    expect(openai.requests.at(-1)!.body.tools).toEqual([{ type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: weatherTool.parameters, strict: true } }])
    const second = await client.responses.create({
      model: 'gpt-4o-mini',
      tools: [weatherTool],
      input: [
        { role: 'user', content: [{ type: 'input_text', text: 'Weather in Paris?' }] },
        { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: 'function_call_output', call_id: call.call_id, output: 'sunny, 24C' }
      ]
    })
    expect(second.output_text).toBe('Sunny in Paris.')
    const sent = openai.requests.at(-1)!.body.messages
    expect(sent[1]).toEqual({ role: 'assistant', content: null, tool_calls: [{ id: call.call_id, type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] })
    expect(sent[2]).toEqual({ role: 'tool', tool_call_id: call.call_id, content: 'sunny, 24C' })
  })

  it('streams the Responses events in order with sequence numbers; finalResponse has usage', async () => {
    const stream = client.responses.stream({ model: 'gpt-4o-mini', input: 'one two three' })
    const events: { type: string; sequence_number: number }[] = []
    const deltas: string[] = []
    stream.on('event', (e) => events.push(e))
    stream.on('response.output_text.delta', (e) => deltas.push(e.delta))
    const final = await stream.finalResponse()
    expect(deltas.join('')).toBe('You said: one two three')
    expect(final.output_text).toBe('You said: one two three')
    expect(final.usage!.output_tokens).toBeGreaterThan(0)
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i))
    const names = events.map((e) => e.type).filter((t) => t !== 'response.output_text.delta')
    expect(names).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed'
    ])
    const last = (await entries()).at(-1)!
    expect(last).toMatchObject({ surface: 'responses', stream: true, status: 'ok', estimated: false })
  })

  it('streams function-call argument deltas (create with stream: true)', async () => {
    openai.script = () => ({ toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris"}' }] })
    const stream = await client.responses.create({ model: 'gpt-4o-mini', input: 'Weather?', tools: [weatherTool], stream: true })
    const seen: OpenAI.Responses.ResponseStreamEvent[] = []
    for await (const ev of stream) seen.push(ev)
    const args = seen.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => (e as { delta: string }).delta)
    expect(args.join('')).toBe('{"city":"Paris"}')
    const done = seen.find((e) => e.type === 'response.function_call_arguments.done') as OpenAI.Responses.ResponseFunctionCallArgumentsDoneEvent
    expect(done.arguments).toBe('{"city":"Paris"}')
    const completed = seen.at(-1) as OpenAI.Responses.ResponseCompletedEvent
    expect(completed.type).toBe('response.completed')
    expect(completed.response.output[0]).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"city":"Paris"}', status: 'completed' })
  })

  it('maps text.format json_schema to response_format', async () => {
    const schema = { type: 'object', properties: { a: { type: 'string' } }, required: ['a'], additionalProperties: false }
    openai.script = () => ({ content: '{"a":"x"}' })
    const res = await client.responses.create({ model: 'gpt-4o-mini', input: 'json please', text: { format: { type: 'json_schema', name: 'thing', schema, strict: true } } })
    expect(JSON.parse(res.output_text)).toEqual({ a: 'x' })
    expect(openai.requests.at(-1)!.body.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'thing', schema, strict: true } })
  })

  it('translates to Anthropic targets too', async () => {
    const res = await client.responses.create({ model: 'claude-sonnet', instructions: 'Be brief.', input: 'hi claude', max_output_tokens: 30 })
    expect(res.output_text).toBe('Echo: hi claude')
    const sent = anthropic.requests.at(-1)!.body
    expect(sent).toMatchObject({ model: 'claude-sonnet-4-5', max_tokens: 30, system: 'Be brief.', messages: [{ role: 'user', content: 'hi claude' }] })
    expect((await entries()).at(-1)).toMatchObject({ provider: 'anthropic', surface: 'responses' })
  })

  it('reports max_output_tokens cut-offs as incomplete', async () => {
    openai.script = () => ({ content: 'cut', finishReason: 'length' })
    const res = await client.responses.create({ model: 'gpt-4o-mini', input: 'long story' })
    expect(res).toMatchObject({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } })
  })

  it('answers 400 for what needs stored state or built-in tools on a chat-only target', async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ previous_response_id: 'resp_123' }, 'previous_response_id'],
      [{ store: true }, 'store'],
      [{ background: true }, 'background'],
      [{ tools: [{ type: 'web_search_preview' }] }, 'tools[0].type'],
      [{ tools: [{ type: 'custom', name: 'apply_patch' }] }, 'tools[0].type'],
      [{ input: [{ type: 'item_reference', id: 'msg_1' }] }, 'input[0]']
    ]
    for (const [extra, param] of cases) {
      const err = await client.responses.create({ model: 'gpt-4o-mini', input: 'x', ...extra } as OpenAI.Responses.ResponseCreateParamsNonStreaming).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(OpenAI.BadRequestError)
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe(param)
    }
    expect(openai.requests.filter((r) => JSON.stringify(r.body).includes('resp_123'))).toHaveLength(0)
  })
})
