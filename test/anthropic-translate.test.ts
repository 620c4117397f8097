import { describe, expect, it } from 'vitest'
import { GatewayError, UpstreamError } from '../src/errors.js'
import {
  addCacheBreakpoint,
  anthropicEventsToChunks,
  chunksToAnthropicEvents,
  countCacheBreakpoints,
  formatAnthropicSSE,
  fromAnthropicMessage,
  fromAnthropicRequest,
  parseAnthropicError,
  toAnthropicError,
  toAnthropicMessage,
  toAnthropicRequest,
  toAnthropicToolChoice,
  toCanonicalUsage,
  toFinishReason,
  type AnthropicMessage,
  type AnthropicRequest,
  type AnthropicStreamEvent
} from '../src/providers/anthropic/index.js'
import type { ChatChunk, ChatCompletion, ChatRequest } from '../src/types.js'

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = []
  for await (const x of it) out.push(x)
  return out
}

async function* from<T>(items: T[]): AsyncGenerator<T> {
  for (const x of items) yield x
}

const weatherTool = {
  type: 'function' as const,
  function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }
}

describe('toAnthropicRequest', () => {
  it('moves system and developer messages to `system`, a single one as a string', () => {
    const one = toAnthropicRequest({ model: 'm', messages: [{ role: 'system', content: 'Be brief' }, { role: 'user', content: 'Hi' }] })
    expect(one).toEqual({ model: 'm', max_tokens: 4096, system: 'Be brief', messages: [{ role: 'user', content: 'Hi' }] })

    const two = toAnthropicRequest({
      model: 'm',
      messages: [
        { role: 'system', content: 'Rule one' },
        { role: 'developer', content: [{ type: 'text', text: 'Rule two', cache_control: { type: 'ephemeral' } }] },
        { role: 'user', content: 'Hi' }
      ]
    })
    expect(two.system).toEqual([
      { type: 'text', text: 'Rule one' },
      { type: 'text', text: 'Rule two', cache_control: { type: 'ephemeral' } }
    ])
  })

  it('merges consecutive same-role messages so roles alternate', () => {
    const out = toAnthropicRequest({
      model: 'm',
      messages: [
        { role: 'user', content: 'first' },
        { role: 'user', content: [{ type: 'text', text: 'second' }] },
        { role: 'assistant', content: 'reply' },
        { role: 'assistant', content: 'more' },
        { role: 'user', content: 'again' }
      ]
    })
    expect(out.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'first' }, { type: 'text', text: 'second' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'reply' }, { type: 'text', text: 'more' }] },
      { role: 'user', content: 'again' }
    ])
  })

  it('turns data: image URLs into base64 sources and http URLs into url sources, keeping cache_control', () => {
    const out = toAnthropicRequest({
      model: 'm',
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'high' }, cache_control: { type: 'ephemeral', ttl: '1h' } }
          ]
        }
      ]
    })
    expect(out.messages[0]!.content).toEqual([
      { type: 'text', text: 'What is this?' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0KGgo=' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' }, cache_control: { type: 'ephemeral', ttl: '1h' } }
    ])
  })

  it('translates tools, tool calls and tool results into a valid tool_use/tool_result exchange', () => {
    const out = toAnthropicRequest({
      model: 'm',
      tools: [weatherTool],
      tool_choice: 'required',
      parallel_tool_calls: false,
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: '',
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_2', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } }
          ]
        },
        { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
        { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: 'rainy' }] },
        { role: 'user', content: 'Thanks, summarise.' }
      ]
    })
    expect(out.tools).toEqual([{ name: 'get_weather', description: 'Weather for a city', input_schema: weatherTool.function.parameters }])
    expect(out.tool_choice).toEqual({ type: 'any', disable_parallel_tool_use: true })
    expect(out.messages).toEqual([
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: [
          { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'get_weather', input: { city: 'Rome' } }
        ]
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: 'sunny' },
          { type: 'tool_result', tool_use_id: 'call_2', content: [{ type: 'text', text: 'rainy' }] },
          { type: 'text', text: 'Thanks, summarise.' }
        ]
      }
    ])
  })

  it('maps every tool_choice form', () => {
    expect(toAnthropicToolChoice('auto')).toEqual({ type: 'auto' })
    expect(toAnthropicToolChoice('none')).toEqual({ type: 'none' })
    expect(toAnthropicToolChoice('required')).toEqual({ type: 'any' })
    expect(toAnthropicToolChoice({ type: 'function', function: { name: 'get_weather' } })).toEqual({ type: 'tool', name: 'get_weather' })
    expect(toAnthropicToolChoice(undefined, false)).toEqual({ type: 'auto', disable_parallel_tool_use: true })
    expect(toAnthropicToolChoice('none', false)).toEqual({ type: 'none' })
    expect(toAnthropicToolChoice(undefined)).toBeUndefined()
  })

  it('maps sampling parameters, stop, max tokens and user', () => {
    const base: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'x' }] }
    expect(toAnthropicRequest({ ...base, stop: 'END', temperature: 1.6, top_p: 0.9, user: 'alice', max_tokens: 100 })).toMatchObject({
      stop_sequences: ['END'],
      temperature: 1,
      top_p: 0.9,
      metadata: { user_id: 'alice' },
      max_tokens: 100
    })
    expect(toAnthropicRequest({ ...base, max_tokens: 100, max_completion_tokens: 50 }).max_tokens).toBe(50)
    expect(toAnthropicRequest(base, { defaultMaxTokens: 777 }).max_tokens).toBe(777)
    expect(toAnthropicRequest({ ...base, stop: ['a', 'b'] }).stop_sequences).toEqual(['a', 'b'])
    expect(toAnthropicRequest({ ...base, tool_choice: 'auto' }).tool_choice).toBeUndefined()
  })

  it('applies message-level cache_control to the last block and trims a whitespace-ending prefill', () => {
    const out = toAnthropicRequest({
      model: 'm',
      messages: [
        { role: 'user', content: 'long document', cache_control: { type: 'ephemeral' } },
        { role: 'assistant', content: 'The answer is ' }
      ]
    })
    expect(out.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'long document', cache_control: { type: 'ephemeral' } }] },
      { role: 'assistant', content: 'The answer is' }
    ])
  })

  it('rejects what Anthropic cannot do with a 400 that names the field', () => {
    const bad = () => toAnthropicRequest({ model: 'm', n: 2, messages: [{ role: 'user', content: 'x' }] })
    expect(bad).toThrow(GatewayError)
    expect(bad).toThrow(/n > 1/)
    try {
      toAnthropicRequest({ model: 'm', messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: {} }] }] })
      expect.unreachable()
    } catch (err) {
      expect((err as GatewayError).status).toBe(400)
      expect((err as GatewayError).param).toBe('messages[0].content[0]')
    }
  })
})

describe('fromAnthropicRequest (inbound /v1/messages to other providers)', () => {
  const body: AnthropicRequest = {
    model: 'claude-sonnet',
    max_tokens: 200,
    system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
    tools: [{ name: 'get_weather', description: 'Weather', input_schema: { type: 'object', properties: { city: { type: 'string' } } } }],
    tool_choice: { type: 'any', disable_parallel_tool_use: true },
    stop_sequences: ['END'],
    temperature: 0.2,
    metadata: { user_id: 'alice' },
    stream: true,
    messages: [
      { role: 'user', content: [{ type: 'text', text: 'Weather?' }, { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: '/9j/4AAQ' } }] },
      {
        role: 'assistant',
        content: [
          { type: 'thinking', thinking: 'hmm', signature: 'sig' },
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Oslo' } }
        ]
      },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'cold' }] }, { type: 'text', text: 'And tomorrow?' }] }
    ]
  }

  it('translates system, images, tool use and tool results into canonical messages', () => {
    expect(fromAnthropicRequest(body)).toEqual({
      model: 'claude-sonnet',
      max_tokens: 200,
      stream: true,
      stream_options: { include_usage: true },
      stop: ['END'],
      temperature: 0.2,
      user: 'alice',
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
      tool_choice: 'required',
      parallel_tool_calls: false,
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }] },
        { role: 'user', content: [{ type: 'text', text: 'Weather?' }, { type: 'image_url', image_url: { url: 'data:image/jpeg;base64,/9j/4AAQ' } }] },
        { role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }] },
        { role: 'tool', tool_call_id: 'toolu_1', content: 'cold' },
        { role: 'user', content: 'And tomorrow?' }
      ]
    })
  })

  it('comes back to the same Messages request through toAnthropicRequest (minus thinking)', () => {
    const back = toAnthropicRequest(fromAnthropicRequest(body))
    const { stream: _stream, ...expected } = body
    expected.messages = body.messages.map((m) => (m.role === 'assistant' ? { ...m, content: (m.content as { type: string }[]).filter((b) => b.type !== 'thinking') } : m)) as AnthropicRequest['messages']
    expected.messages[2] = { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'cold' }, { type: 'text', text: 'And tomorrow?' }] }
    expect(back).toEqual(expected)
  })

  it('rejects server tools for non-Anthropic targets', () => {
    expect(() => fromAnthropicRequest({ ...body, tools: [{ type: 'web_search_20250305', name: 'web_search' } as never] })).toThrow(/only available on Anthropic models/)
  })
})

const toolMessage: AnthropicMessage = {
  id: 'msg_01',
  type: 'message',
  role: 'assistant',
  model: 'claude-sonnet-4-5',
  content: [
    { type: 'text', text: 'Let me check.' },
    { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } }
  ],
  stop_reason: 'tool_use',
  stop_sequence: null,
  usage: { input_tokens: 10, output_tokens: 20, cache_read_input_tokens: 1000, cache_creation_input_tokens: 50 }
}

describe('responses', () => {
  it('turns text and tool_use blocks into content and tool_calls, with OpenAI usage semantics', () => {
    const c = fromAnthropicMessage(toolMessage, 1700000000)
    expect(c).toEqual({
      id: 'msg_01',
      object: 'chat.completion',
      created: 1700000000,
      model: 'claude-sonnet-4-5',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: 'Let me check.',
            tool_calls: [{ id: 'toolu_01', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }]
          },
          finish_reason: 'tool_calls',
          logprobs: null
        }
      ],
      usage: {
        prompt_tokens: 1060,
        completion_tokens: 20,
        total_tokens: 1080,
        prompt_tokens_details: { cached_tokens: 1000 },
        cache_creation_input_tokens: 50
      }
    })
  })

  it('maps stop reasons', () => {
    expect(['end_turn', 'stop_sequence', 'max_tokens', 'tool_use', 'refusal', null].map(toFinishReason)).toEqual(['stop', 'stop', 'length', 'tool_calls', 'content_filter', null])
  })

  it('round-trips a completion through toAnthropicMessage', () => {
    const back = toAnthropicMessage(fromAnthropicMessage(toolMessage))
    expect(back).toEqual(toolMessage)
  })

  it('renders a canonical completion from another provider as an Anthropic message', () => {
    const completion: ChatCompletion = {
      id: 'chatcmpl-9',
      object: 'chat.completion',
      created: 1,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hi' }, finish_reason: 'length' }],
      usage: { prompt_tokens: 30, completion_tokens: 2, total_tokens: 32, prompt_tokens_details: { cached_tokens: 10 } }
    }
    expect(toAnthropicMessage(completion)).toEqual({
      id: 'msg_chatcmpl-9',
      type: 'message',
      role: 'assistant',
      model: 'gpt-4o-mini',
      content: [{ type: 'text', text: 'Hi' }],
      stop_reason: 'max_tokens',
      stop_sequence: null,
      usage: { input_tokens: 20, output_tokens: 2, cache_read_input_tokens: 10, cache_creation_input_tokens: 0 }
    })
  })

  it('keeps cache reads out of input_tokens and in prompt_tokens', () => {
    const u = toCanonicalUsage({ input_tokens: 5, output_tokens: 1, cache_read_input_tokens: 95 })
    expect(u.prompt_tokens).toBe(100)
    expect(u.prompt_tokens_details?.cached_tokens).toBe(95)
    expect(u.cache_creation_input_tokens).toBe(0)
  })
})

const streamed: AnthropicStreamEvent[] = [
  { type: 'message_start', message: { ...toolMessage, content: [], stop_reason: null, usage: { input_tokens: 10, output_tokens: 1, cache_read_input_tokens: 1000, cache_creation_input_tokens: 50 } } },
  { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
  { type: 'ping' },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Let me ' } },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'check.' } },
  { type: 'content_block_stop', index: 0 },
  { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: {} } },
  { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } },
  { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"ci' } },
  { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: 'ty":"Paris"}' } },
  { type: 'content_block_stop', index: 1 },
  { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'toolu_02', name: 'get_time', input: {} } },
  { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '' } },
  { type: 'content_block_stop', index: 2 },
  { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 20, input_tokens: null, cache_read_input_tokens: null } as never },
  { type: 'message_stop' }
]

describe('anthropicEventsToChunks', () => {
  it('emits role, text, tool call deltas, finish and a usage chunk in order', async () => {
    const chunks = await collect(anthropicEventsToChunks(from(streamed), 1))
    expect(chunks.every((c) => c.id === 'msg_01' && c.object === 'chat.completion.chunk' && c.model === 'claude-sonnet-4-5')).toBe(true)
    expect(chunks.map((c) => c.choices[0]?.delta ?? null)).toEqual([
      { role: 'assistant', content: '' },
      { content: 'Let me ' },
      { content: 'check.' },
      { tool_calls: [{ index: 0, id: 'toolu_01', type: 'function', function: { name: 'get_weather', arguments: '' } }] },
      { tool_calls: [{ index: 0, function: { arguments: '{"ci' } }] },
      { tool_calls: [{ index: 0, function: { arguments: 'ty":"Paris"}' } }] },
      { tool_calls: [{ index: 1, id: 'toolu_02', type: 'function', function: { name: 'get_time', arguments: '' } }] },
      { tool_calls: [{ index: 1, function: { arguments: '{}' } }] },
      {},
      null
    ])
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('tool_calls')
    expect(chunks.at(-1)).toMatchObject({
      choices: [],
      usage: { prompt_tokens: 1060, completion_tokens: 20, total_tokens: 1080, prompt_tokens_details: { cached_tokens: 1000 }, cache_creation_input_tokens: 50 }
    })
  })

  it('throws an UpstreamError for an error event, with the status Anthropic uses for its type', async () => {
    const events: AnthropicStreamEvent[] = [streamed[0]!, streamed[1]!, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }]
    const err = await collect(anthropicEventsToChunks(from(events))).catch((e) => e)
    expect(err).toBeInstanceOf(UpstreamError)
    expect(err).toMatchObject({ status: 529, message: 'Overloaded', code: 'overloaded_error', retryable: true })
  })

  it('treats a stream that ends without message_stop as truncated', async () => {
    const err = await collect(anthropicEventsToChunks(from(streamed.slice(0, 5)))).catch((e) => e)
    expect(err).toMatchObject({ status: 502, kind: 'protocol', code: 'truncated_stream' })
  })
})

function chunk(delta: ChatChunk['choices'][number]['delta'], finish: string | null = null): ChatChunk {
  return { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta, finish_reason: finish }] }
}

describe('chunksToAnthropicEvents', () => {
  const chunks: ChatChunk[] = [
    chunk({ role: 'assistant', content: '' }),
    chunk({ content: 'Let me ' }),
    chunk({ content: 'check.' }),
    chunk({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } as never }] }),
    chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } as never }] }),
    chunk({}, 'tool_calls'),
    { ...chunk({}), choices: [], usage: { prompt_tokens: 30, completion_tokens: 9, total_tokens: 39, prompt_tokens_details: { cached_tokens: 20 } } }
  ]

  it("produces Anthropic's event sequence with usage in message_delta", async () => {
    const events = await collect(chunksToAnthropicEvents(from(chunks), { model: 'claude-sonnet' }))
    expect(events.map((e) => e.type)).toEqual([
      'message_start',
      'ping',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop'
    ])
    expect(events[0]).toMatchObject({ message: { id: 'msg_chatcmpl-1', model: 'claude-sonnet', role: 'assistant', content: [] } })
    expect(events[6]).toEqual({ type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'call_a', name: 'get_weather', input: {} } })
    expect(events[10]).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'tool_use', stop_sequence: null },
      usage: { input_tokens: 10, output_tokens: 9, cache_read_input_tokens: 20, cache_creation_input_tokens: 0 }
    })
  })

  it('round-trips through anthropicEventsToChunks to the same text and arguments', async () => {
    const back = await collect(anthropicEventsToChunks(chunksToAnthropicEvents(from(chunks))))
    const text = back.map((c) => c.choices[0]?.delta.content ?? '').join('')
    const args = back.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []).map((t) => t.function?.arguments ?? '').join('')
    expect(text).toBe('Let me check.')
    expect(JSON.parse(args)).toEqual({ city: 'Paris' })
    expect(back.at(-1)!.usage).toMatchObject({ prompt_tokens: 30, completion_tokens: 9, prompt_tokens_details: { cached_tokens: 20 } })
  })

  it('ends with an error event when the source fails', async () => {
    async function* failing(): AsyncGenerator<ChatChunk> {
      yield chunk({ content: 'partial' })
      throw new UpstreamError(429, 'Slow down', { kind: 'rate_limit' })
    }
    const events = await collect(chunksToAnthropicEvents(failing()))
    expect(events.at(-1)).toEqual({ type: 'error', error: { type: 'rate_limit_error', message: 'Slow down' } })
  })

  it('frames each event with an event: line and a blank line', () => {
    expect(formatAnthropicSSE({ type: 'message_stop' })).toBe('event: message_stop\ndata: {"type":"message_stop"}\n\n')
  })
})

describe('errors', () => {
  it('reads Anthropic error bodies and spots context-length failures', () => {
    expect(parseAnthropicError(529, '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}')).toEqual({
      message: 'Overloaded',
      type: 'overloaded_error',
      code: 'overloaded_error',
      kind: 'http'
    })
    expect(parseAnthropicError(400, '{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 210000 tokens > 200000 maximum"}}').kind).toBe('context_length')
    expect(parseAnthropicError(429, '{"type":"error","error":{"type":"rate_limit_error","message":"slow"}}').kind).toBe('rate_limit')
    expect(parseAnthropicError(502, '<html>Bad gateway</html>').message).toBe('<html>Bad gateway</html>')
  })

  it('renders gateway errors in Anthropic shape', () => {
    expect(toAnthropicError(new GatewayError(404, 'no such model')).body).toEqual({ type: 'error', error: { type: 'not_found_error', message: 'no such model' } })
    expect(toAnthropicError(new UpstreamError(529, 'Overloaded', { type: 'overloaded_error' }))).toEqual({
      status: 529,
      body: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }
    })
  })
})

describe('cache breakpoints', () => {
  const body: AnthropicRequest = {
    model: 'm',
    max_tokens: 10,
    system: 'You are a careful assistant.',
    tools: [{ name: 'a', input_schema: {} }, { name: 'b', input_schema: {} }],
    messages: [{ role: 'user', content: 'Hi' }]
  }

  it('marks the end of tools, system and the last message without mutating the input', () => {
    const out = addCacheBreakpoint(addCacheBreakpoint(addCacheBreakpoint(body, 'tools'), 'system'), 'last_message', { type: 'ephemeral', ttl: '1h' })
    expect(out.tools![1]!.cache_control).toEqual({ type: 'ephemeral' })
    expect(out.tools![0]!.cache_control).toBeUndefined()
    expect(out.system).toEqual([{ type: 'text', text: 'You are a careful assistant.', cache_control: { type: 'ephemeral' } }])
    expect(out.messages[0]!.content).toEqual([{ type: 'text', text: 'Hi', cache_control: { type: 'ephemeral', ttl: '1h' } }])
    expect(countCacheBreakpoints(out)).toBe(3)
    expect(countCacheBreakpoints(body)).toBe(0)
  })

  it('never adds a fifth breakpoint', () => {
    const full: AnthropicRequest = {
      ...body,
      system: undefined,
      messages: [{ role: 'user', content: [1, 2, 3, 4].map((i) => ({ type: 'text' as const, text: `p${i}`, cache_control: { type: 'ephemeral' as const } })) }]
    }
    expect(addCacheBreakpoint(full, 'tools')).toBe(full)
  })
})
