import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { providerSchema } from '../src/config/schema.js'
import { GatewayError, UpstreamError } from '../src/errors.js'
import { createLlamaProvider, type LlamaProvider, type LlamaProviderConfig } from '../src/providers/llama/index.js'
import type { ChatChunk, ChatRequest } from '../src/types.js'
import { writeTinyLlamaGguf, type TinyLlamaInfo } from './gguf/tinyLlama.js'

let dir: string
let info: TinyLlamaInfo
let llm: LlamaProvider

// Through the real config schema, so the provider takes exactly what a gateway.yaml entry parses to.
const base = (path: string): LlamaProviderConfig =>
  providerSchema.parse({ kind: 'llama', model_path: path, load: 'start', context_size: 1024, concurrency: 2, embedding: true, threads: 1 }) as LlamaProviderConfig
const signal = () => new AbortController().signal
const ask = (extra: Partial<ChatRequest> = {}): ChatRequest => ({
  model: 'tiny',
  messages: [{ role: 'system', content: 'You are a test.' }, { role: 'user', content: 'hello world, what is the budget?' }],
  temperature: 0,
  max_tokens: 12,
  ...extra
})
async function collect(stream: AsyncIterable<ChatChunk>): Promise<ChatChunk[]> {
  const chunks: ChatChunk[] = []
  for await (const c of stream) chunks.push(c)
  return chunks
}
const textOf = (chunks: ChatChunk[]) => chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-llama-'))
  // End-of-turn suppressed: every generation runs to its token limit, so lengths and timings are known.
  info = await writeTinyLlamaGguf(join(dir, 'tiny.gguf'), { seed: 42, pooling: 'mean', suppressEndOfTurn: true })
  llm = createLlamaProvider('local', base(info.path))
  await llm.ready()
}, 60_000)

afterAll(async () => {
  await llm?.close()
  await rm(dir, { recursive: true, force: true })
})

describe('llama provider: loading', () => {
  it('loads the model at start and reports itself available', () => {
    expect(llm.kind).toBe('llama')
    expect(llm.stats()).toMatchObject({ loaded: true, active: 0, queued: 0, concurrency: 2 })
    expect(llm.unavailableReason?.()).toBeUndefined()
  })

  it('turns a bad model_path into a 503 naming the path, without crashing', async () => {
    const missing = join(dir, 'nope.gguf')
    const bad = createLlamaProvider('broken', base(missing))
    const err = await bad.chat(ask(), { signal: signal() }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(GatewayError)
    expect((err as GatewayError).status).toBe(503)
    expect((err as GatewayError).message).toContain(missing)
    expect(bad.unavailableReason?.()).toContain(missing)
    await bad.close()
  })

  it('turns a file that is not a model into a 503 too', async () => {
    const junk = join(dir, 'junk.gguf')
    await import('node:fs/promises').then((fs) => fs.writeFile(junk, 'not a gguf file'))
    const bad = createLlamaProvider('junk', { ...base(junk), load: 'lazy' })
    const err = await bad.chat(ask(), { signal: signal() }).catch((e: unknown) => e)
    expect((err as GatewayError).status).toBe(503)
    expect((err as GatewayError).message).toContain(junk)
    await bad.close()
  })
})

describe('llama provider: chat', () => {
  it('answers with a chat.completion and token usage', async () => {
    const res = await llm.chat(ask(), { signal: signal() })
    expect(res.object).toBe('chat.completion')
    expect(res.model).toBe('tiny')
    expect(res.choices).toHaveLength(1)
    expect(res.choices[0]!.message.role).toBe('assistant')
    expect(typeof res.choices[0]!.message.content).toBe('string')
    const usage = res.usage!
    expect(usage.prompt_tokens).toBeGreaterThan(10)
    expect(usage.completion_tokens).toBeGreaterThan(0)
    expect(usage.completion_tokens).toBeLessThanOrEqual(12)
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens)
    expect(res.choices[0]!.finish_reason).toBe('length')
    expect(usage.completion_tokens).toBe(12)
  })

  it('ends with finish_reason stop when the model ends its turn', async () => {
    const natural = await writeTinyLlamaGguf(join(dir, 'natural.gguf'), { seed: 42 })
    const p = createLlamaProvider('natural', { ...base(natural.path), embedding: false })
    const res = await p.chat(ask({ max_tokens: null }), { signal: signal() })
    expect(res.choices[0]!.finish_reason).toBe('stop')
    expect(res.usage!.completion_tokens + res.usage!.prompt_tokens).toBeLessThan(1024)
    await p.close()
  })

  it('honours max_completion_tokens over the context room', async () => {
    const res = await llm.chat(ask({ max_tokens: undefined, max_completion_tokens: 3 }), { signal: signal() })
    expect(res.usage!.completion_tokens).toBe(3)
    const unbounded = await llm.chat(ask({ max_tokens: null }), { signal: signal() })
    expect(unbounded.usage!.total_tokens).toBe(1024)
    expect(unbounded.choices[0]!.finish_reason).toBe('length')
  })

  it('is deterministic for a fixed seed and reuses the shared prompt prefix', async () => {
    const a = await llm.chat(ask({ temperature: 0.9, seed: 7 }), { signal: signal() })
    const b = await llm.chat(ask({ temperature: 0.9, seed: 7 }), { signal: signal() })
    expect(b.choices[0]!.message.content).toBe(a.choices[0]!.message.content)
    expect(b.usage!.completion_tokens).toBe(a.usage!.completion_tokens)
    // Same prompt on a pooled sequence: at least part of it was already evaluated.
    expect(b.usage!.prompt_tokens_details?.cached_tokens).toBeGreaterThan(0)
  })

  it('samples each unseeded request afresh, also several in the same second', async () => {
    // node-llama-cpp's default seed is the current second: these six, made well within one or two seconds,
    // would then come out in at most two distinct texts.
    const texts = new Set<string>()
    for (let i = 0; i < 6; i++) {
      const res = await llm.chat(ask({ temperature: 1, max_tokens: 16 }), { signal: signal() })
      texts.add(res.choices[0]!.message.content as string)
    }
    expect(texts.size).toBeGreaterThanOrEqual(4)
  })

  it('cuts the output at a stop sequence', async () => {
    const full = (await llm.chat(ask({ max_tokens: 40 }), { signal: signal() })).choices[0]!.message.content as string
    expect(full.length).toBeGreaterThan(8)
    const stop = full.slice(5, 8)
    const res = await llm.chat(ask({ max_tokens: 40, stop }), { signal: signal() })
    expect(res.choices[0]!.message.content).toBe(full.slice(0, full.indexOf(stop)))
    expect(res.choices[0]!.finish_reason).toBe('stop')
  })

  it('rejects a prompt longer than the context with a context_length error', async () => {
    const long = 'hello world '.repeat(2000)
    const err = await llm.chat(ask({ messages: [{ role: 'user', content: long }] }), { signal: signal() }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(UpstreamError)
    expect((err as UpstreamError).kind).toBe('context_length')
    expect((err as UpstreamError).status).toBe(400)
  })
})

describe('llama provider: streaming', () => {
  it('streams chat.completion.chunk objects ending with a usage chunk, same text as non-streaming', async () => {
    const whole = await llm.chat(ask(), { signal: signal() })
    const chunks = await collect(await llm.chatStream(ask({ stream: true }), { signal: signal() }))
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0]!.id)).toBe(true)
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant')
    const last = chunks.at(-1)!
    expect(last.choices).toEqual([])
    expect(last.usage).toMatchObject({ prompt_tokens: whole.usage!.prompt_tokens, completion_tokens: whole.usage!.completion_tokens })
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe(whole.choices[0]!.finish_reason)
    expect(textOf(chunks)).toBe(whole.choices[0]!.message.content)
  })
})

describe('llama provider: logprobs', () => {
  it('returns one finite logprob per generated token, with sorted top_logprobs', async () => {
    const res = await llm.chat(ask({ logprobs: true, top_logprobs: 3 }), { signal: signal() })
    const content = res.choices[0]!.logprobs!.content!
    expect(content).toHaveLength(res.usage!.completion_tokens)
    for (const t of content) {
      expect(Number.isFinite(t.logprob)).toBe(true)
      expect(t.logprob).toBeLessThanOrEqual(0)
      expect(typeof t.token).toBe('string')
      expect(t.top_logprobs).toHaveLength(3)
      const tops = t.top_logprobs!.map((x) => x.logprob)
      expect([...tops].sort((x, y) => y - x)).toEqual(tops)
      // Greedy decoding picks the most likely token.
      expect(t.logprob).toBeCloseTo(tops[0]!, 5)
    }
    // A random model is unsure: the mean probability is far from 1.
    const mean = content.reduce((s, t) => s + t.logprob, 0) / content.length
    expect(mean).toBeLessThan(-0.1)
  })

  it('streams logprobs alongside content', async () => {
    const chunks = await collect(await llm.chatStream(ask({ logprobs: true }), { signal: signal() }))
    const logprobs = chunks.flatMap((c) => c.choices[0]?.logprobs?.content ?? [])
    expect(logprobs).toHaveLength(chunks.at(-1)!.usage!.completion_tokens)
  })

  it('omits logprobs unless asked', async () => {
    const res = await llm.chat(ask(), { signal: signal() })
    expect(res.choices[0]!.logprobs).toBeNull()
  })
})

describe('llama provider: concurrency and abort', () => {
  it('queues requests beyond the sequence count, FIFO, and completes them all', async () => {
    let maxQueued = 0
    let maxActive = 0
    const poll = setInterval(() => {
      const s = llm.stats()
      maxQueued = Math.max(maxQueued, s.queued)
      maxActive = Math.max(maxActive, s.active)
    }, 1)
    const finished: number[] = []
    const before = llm.stats().requestsTotal
    const all = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        llm.chat(ask({ max_tokens: 24, messages: [{ role: 'user', content: `request ${i}` }] }), { signal: signal() }).then((r) => {
          finished.push(i)
          return r
        })
      )
    )
    clearInterval(poll)
    expect(all.every((r) => r.usage!.completion_tokens > 0)).toBe(true)
    expect(maxActive).toBe(2)
    expect(maxQueued).toBeGreaterThanOrEqual(1)
    expect(llm.stats()).toMatchObject({ active: 0, queued: 0, requestsTotal: before + 6 })
    expect(llm.stats().tokensPerSecond).toBeGreaterThan(0)
  })

  it('stops a stream promptly on abort and frees the sequence', async () => {
    const ac = new AbortController()
    const before = llm.stats().completionTokensTotal
    const stream = await llm.chatStream(ask({ max_tokens: null, stream: true }), { signal: ac.signal })
    let seen = 0
    let abortedAt = 0
    const err = await (async () => {
      for await (const c of stream) {
        if (c.choices[0]?.delta.content) seen++
        if (seen === 3) {
          abortedAt = performance.now()
          ac.abort()
        }
      }
    })().catch((e: unknown) => e)
    expect(performance.now() - abortedAt).toBeLessThan(500)
    expect(err).toBeInstanceOf(UpstreamError)
    expect((err as UpstreamError).kind).toBe('aborted')
    // The context had room for ~1000 tokens; generation stopped long before.
    expect(llm.stats().completionTokensTotal - before).toBeLessThan(50)
    expect(llm.stats().active).toBe(0)
    const after = await llm.chat(ask({ max_tokens: 2 }), { signal: signal() })
    expect(after.usage!.completion_tokens).toBeGreaterThan(0)
  })

  it('drops a request aborted while it waits in the queue', async () => {
    const hogs = [0, 1].map(() => llm.chat(ask({ max_tokens: 200 }), { signal: signal() }))
    const ac = new AbortController()
    const queued = llm.chat(ask(), { signal: ac.signal })
    await new Promise((r) => setTimeout(r, 5))
    ac.abort()
    const err = await queued.catch((e: unknown) => e)
    expect((err as UpstreamError).kind).toBe('aborted')
    await Promise.all(hogs)
    expect(llm.stats()).toMatchObject({ active: 0, queued: 0 })
  })

  it('stops generation when the consumer stops reading', async () => {
    const before = llm.stats().completionTokensTotal
    const stream = await llm.chatStream(ask({ max_tokens: null }), { signal: signal() })
    for await (const c of stream) if (c.choices[0]?.delta.content) break
    await new Promise((r) => setTimeout(r, 50))
    expect(llm.stats().active).toBe(0)
    expect(llm.stats().completionTokensTotal - before).toBeLessThan(50)
  })
})

describe('llama provider: tools and formats', () => {
  it('renders tool calls and results in history and answers with a valid shape when tools are offered', async () => {
    const res = await llm.chat(
      ask({
        max_tokens: 16,
        messages: [
          { role: 'user', content: 'weather?' },
          { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] },
          { role: 'tool', tool_call_id: 'call_1', content: '{"temp":3}' },
          { role: 'user', content: 'and tomorrow?' }
        ],
        tools: [{ type: 'function', function: { name: 'weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]
      }),
      { signal: signal() }
    )
    const choice = res.choices[0]!
    expect(['stop', 'length', 'tool_calls']).toContain(choice.finish_reason)
    if (choice.finish_reason === 'tool_calls') {
      expect(choice.message.tool_calls![0]!.function.name).toBe('weather')
      expect(() => JSON.parse(choice.message.tool_calls![0]!.function.arguments)).not.toThrow()
    } else expect(typeof choice.message.content).toBe('string')
    expect(res.usage!.prompt_tokens).toBeGreaterThan(20)
    expect(res.usage!.completion_tokens).toBeGreaterThan(0)
  })

  it('applies logit_bias and rejects token ids outside the vocabulary', async () => {
    const res = await llm.chat(ask({ max_tokens: 5, logprobs: true, logit_bias: { 300: 100 } }), { signal: signal() })
    const tokens = res.choices[0]!.logprobs!.content!.map((t) => t.token)
    expect(new Set(tokens).size).toBe(1)
    expect(res.choices[0]!.logprobs!.content![0]!.logprob).toBeGreaterThan(-0.01)
    const err = await llm.chat(ask({ logit_bias: { [info.vocabSize]: 5 } }), { signal: signal() }).catch((e: unknown) => e)
    expect((err as GatewayError).status).toBe(400)
  })

  it('rejects a tool result without a matching call', async () => {
    const err = await llm.chat(ask({ messages: [{ role: 'tool', tool_call_id: 'x', content: '1' }] }), { signal: signal() }).catch((e: unknown) => e)
    expect((err as GatewayError).status).toBe(400)
  })

  it('constrains output to JSON for response_format json_object', async () => {
    const res = await llm.chat(ask({ max_tokens: 40, response_format: { type: 'json_object' } }), { signal: signal() })
    const text = (res.choices[0]!.message.content as string).trimStart()
    expect(text.startsWith('{')).toBe(true)
    if (res.choices[0]!.finish_reason === 'stop') expect(() => JSON.parse(text)).not.toThrow()
  })
})

describe('llama provider: embeddings', () => {
  it('embeds strings into unit vectors of the model width', async () => {
    const res = await llm.embed!({ model: 'tiny', input: ['hello world', 'the budget gateway'] }, { signal: signal() })
    expect(res.object).toBe('list')
    expect(res.data).toHaveLength(2)
    for (const d of res.data) {
      const v = d.embedding as number[]
      expect(v).toHaveLength(info.embd)
      expect(Math.hypot(...v)).toBeCloseTo(1, 4)
    }
    expect(res.data[0]!.embedding).not.toEqual(res.data[1]!.embedding)
    expect(res.usage.prompt_tokens).toBeGreaterThan(2)
    const again = await llm.embed!({ model: 'tiny', input: 'hello world' }, { signal: signal() })
    expect(again.data[0]!.embedding).toEqual(res.data[0]!.embedding)
  })

  it('truncates to dimensions and encodes base64', async () => {
    const res = await llm.embed!({ model: 'tiny', input: 'hello', dimensions: 16, encoding_format: 'base64' }, { signal: signal() })
    const b = Buffer.from(res.data[0]!.embedding as string, 'base64')
    expect(b.length).toBe(16 * 4)
  })
})
