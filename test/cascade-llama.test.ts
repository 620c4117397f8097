import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { ProviderConfig } from '../src/config/schema.js'
import { registerProviderKind } from '../src/providers/index.js'
import { createLlamaProvider, type LlamaProviderConfig } from '../src/providers/llama/index.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { writeTinyLlamaGguf } from './gguf/tinyLlama.js'
import { routingModels, startRoutingGateway, user } from './helpers/routing.js'

// The real local model as cascade tier 0. Its weights are random but fixed by the writer's seed, and the
// requests are greedy (temperature 0), so its answer and logprobs are fixed too: the tiny model's greedy
// answer to "hello there" has a mean token logprob of about -2.2, between the two thresholds below.
let dir: string
let fake: FakeOpenAI
let env: Awaited<ReturnType<typeof startRoutingGateway>>

beforeAll(async () => {
  // the gateway may already register `llama`; registering the same factory again is harmless
  registerProviderKind('llama', (name, config: ProviderConfig) => createLlamaProvider(name, config as LlamaProviderConfig))
  dir = await mkdtemp(join(tmpdir(), 'sluice-cascade-llama-'))
  const info = await writeTinyLlamaGguf(join(dir, 'tiny.gguf'), { seed: 7, suppressEndOfTurn: true })
  fake = await startFakeOpenAI()
  env = await startRoutingGateway(
    fake,
    {
      retry: { retries: 0 },
      routes: {
        'local-first': { cascade: [{ route: 'tiny', checks: { min_mean_logprob: -1.5 } }, { route: 'strong' }] },
        'local-lenient': { cascade: [{ route: 'tiny', checks: { min_mean_logprob: -3 } }, { route: 'strong' }] },
        'local-accept': { cascade: [{ route: 'tiny', checks: { min_mean_logprob: -1000, refusal: false } }, { route: 'strong' }] }
      }
    },
    {
      providers: { local: { kind: 'llama', model_path: info.path, load: 'start', context_size: 1024, concurrency: 2, threads: 1 } },
      models: routingModels({ tiny: { provider: 'local', model: 'tiny' } })
    }
  )
}, 120_000)
afterAll(async () => {
  await env?.gw.close(0)
  await fake?.close()
  if (dir) await rm(dir, { recursive: true, force: true })
})

describe('cascade with the real local model as tier 1', () => {
  const ask = async (model: string, stream: boolean) => {
    const res = await env.client.chat.completions.create({ model, messages: user('hello there'), max_tokens: 8, temperature: 0, stream }).withResponse()
    let text = ''
    if (stream) for await (const c of res.data as AsyncIterable<any>) text += c.choices[0]?.delta?.content ?? ''
    else text = (res.data as any).choices[0].message.content
    const entries = await env.attemptsOf(res.response.headers.get('x-sluice-request-id'))
    // the local tier ran whole (not streamed) with real usage, whatever the client asked
    expect(entries[0]).toMatchObject({ model: 'local/tiny', stream: false, estimated: false })
    expect(entries[0]!.tokens.output).toBe(8)
    expect(res.response.headers.get('x-sluice-attempts')).toBe(String(entries.length))
    return { headers: res.response.headers, text, entries }
  }

  for (const stream of [false, true]) {
    it(`${stream ? 'streaming' : 'non-streaming'}: a mean logprob below the threshold escalates to the strong tier`, async () => {
      const before = fake.requests.length
      const { headers, text, entries } = await ask('local-first', stream)
      expect(headers.get('x-sluice-route')).toBe('strong')
      expect(headers.get('x-sluice-escalations')).toBe('0:low_mean_logprob')
      expect(entries.map((e) => e.status)).toEqual(['rejected', 'ok'])
      const mean = Number(/mean logprob (-?[0-9.]+) < -1.5/.exec(entries[0]!.error ?? '')?.[1])
      expect(mean).toBeLessThan(-1.5)
      expect(mean).toBeGreaterThan(-3)
      expect(text).toBe('You said: hello there')
      expect(fake.requests.length).toBe(before + 1)
      expect(fake.requests.at(-1)!.body.stream ?? false).toBe(stream)
    }, 60_000)

    it(`${stream ? 'streaming' : 'non-streaming'}: the same answer is accepted under a lower threshold, without calling the strong tier`, async () => {
      const before = fake.requests.length
      const { headers, text, entries } = await ask('local-lenient', stream)
      expect(headers.get('x-sluice-route')).toBe('tiny')
      expect(headers.get('x-sluice-cascade-tier')).toBe('0')
      expect(headers.get('x-sluice-escalations')).toBeNull()
      expect(entries.map((e) => e.status)).toEqual(['ok'])
      expect(text.length).toBeGreaterThan(0)
      expect(fake.requests.length).toBe(before)
    }, 60_000)
  }

  it('with tools, a logprob-checked local tier escalates a text answer as no_logprobs (the tools path has no logprobs)', async () => {
    const tools = [{ type: 'function' as const, function: { name: 'lookup', description: 'Look a word up', parameters: { type: 'object', properties: { word: { type: 'string' } }, required: ['word'] } } }]
    const res = await env.client.chat.completions.create({ model: 'local-lenient', messages: user('hello there'), tools, max_tokens: 8, temperature: 0 }).withResponse()
    const entries = await env.attemptsOf(res.response.headers.get('x-sluice-request-id'))
    expect(entries[0]).toMatchObject({ model: 'local/tiny', status: 'rejected' })
    expect(res.response.headers.get('x-sluice-escalations')).toBe('0:no_logprobs')
    expect(res.response.headers.get('x-sluice-route')).toBe('strong')
  }, 60_000)

  it('a permissive tier is accepted and its answer streamed from the local model', async () => {
    const before = fake.requests.length
    const res = await env.client.chat.completions.create({ model: 'local-accept', messages: user('hi'), max_tokens: 6, stream: true, stream_options: { include_usage: true } }).withResponse()
    let text = ''
    let usage: any
    for await (const c of res.data) {
      text += c.choices[0]?.delta?.content ?? ''
      if (c.usage) usage = c.usage
    }
    expect(res.response.headers.get('x-sluice-route')).toBe('tiny')
    expect(text.length).toBeGreaterThan(0)
    expect(usage.completion_tokens).toBeGreaterThan(0)
    expect(usage.completion_tokens).toBeLessThanOrEqual(6)
    expect(fake.requests.length).toBe(before)
  }, 60_000)

  it('exports the local model queue depth while requests wait, and the decode speed', async () => {
    const gauge = (text: string, name: string) => Number(new RegExp(`${name}\\{provider="local"\\} ([0-9.e+-]+)`).exec(text)![1])
    // five long requests on two sequences: two generate, three wait
    const all = Promise.all(Array.from({ length: 5 }, (_, i) => env.client.chat.completions.create({ model: 'tiny', messages: user(`wait ${i}`), max_tokens: 300, temperature: 0 })))
    let queued = 0
    let active = 0
    const deadline = Date.now() + 10_000
    while (queued === 0 && Date.now() < deadline) {
      const text = await (await fetch(`${env.gw.url}/metrics`)).text()
      queued = gauge(text, 'sluice_local_queue_depth')
      active = gauge(text, 'sluice_local_active_sequences')
    }
    expect(queued).toBeGreaterThan(0)
    expect(queued).toBeLessThanOrEqual(3)
    expect(active).toBe(2)
    for (const r of await all) expect(r.usage!.completion_tokens).toBeGreaterThan(0)
    const text = await (await fetch(`${env.gw.url}/metrics`)).text()
    expect(gauge(text, 'sluice_local_queue_depth')).toBe(0)
    expect(gauge(text, 'sluice_local_active_sequences')).toBe(0)
    expect(text).toMatch(/sluice_local_tokens_per_second\{provider="local"\} [0-9.e+-]+/)
    const tps = Number(/sluice_local_tokens_per_second\{provider="local"\} ([0-9.e+-]+)/.exec(text)![1])
    expect(tps).toBeGreaterThan(0)
  })
})
