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

// The real local model as cascade tier 0. Its weights are random, so its logprobs decide nothing we can
// predict: these tests check the mechanics (a local attempt with real usage, then acceptance or escalation).
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
        'local-accept': { cascade: [{ route: 'tiny', checks: { min_mean_logprob: -1000, refusal: false } }, { route: 'strong' }] }
      }
    },
    {
      providers: { local: { kind: 'llama', model_path: info.path, load: 'start', context_size: 512, concurrency: 2, threads: 1 } },
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
  for (const stream of [false, true]) {
    it(`${stream ? 'streaming' : 'non-streaming'}: the local tier runs whole with logprobs, then is accepted or escalated`, async () => {
      const res = await env.client.chat.completions.create({ model: 'local-first', messages: user('hello there'), max_tokens: 8, stream }).withResponse()
      let text = ''
      if (stream) for await (const c of res.data as AsyncIterable<any>) text += c.choices[0]?.delta?.content ?? ''
      else text = (res.data as any).choices[0].message.content
      const route = res.response.headers.get('x-sluice-route')
      const entries = await env.attemptsOf(res.response.headers.get('x-sluice-request-id'))
      expect(entries[0]!.model).toBe('local/tiny')
      expect(entries[0]!.stream).toBe(false)
      expect(entries[0]!.estimated).toBe(false)
      expect(entries[0]!.tokens.output).toBeGreaterThan(0)
      expect(entries[0]!.tokens.output).toBeLessThanOrEqual(8)
      if (route === 'tiny') {
        expect(entries.map((e) => e.status)).toEqual(['ok'])
        expect(text.length).toBeGreaterThan(0)
      } else {
        expect(route).toBe('strong')
        expect(entries.map((e) => e.status)).toEqual(['rejected', 'ok'])
        expect(entries[0]!.error).toMatch(/logprob|refusal|empty/)
        expect(text).toBe('You said: hello there')
        expect(fake.requests.at(-1)!.body.stream ?? false).toBe(stream)
      }
      expect(res.response.headers.get('x-sluice-attempts')).toBe(String(entries.length))
    }, 60_000)
  }

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

  it('exports the local model queue depth and decode speed', async () => {
    const text = await (await fetch(`${env.gw.url}/metrics`)).text()
    expect(text).toMatch(/sluice_local_queue_depth\{provider="local"\} 0/)
    expect(text).toMatch(/sluice_local_tokens_per_second\{provider="local"\} [0-9.e+-]+/)
    const tps = Number(/sluice_local_tokens_per_second\{provider="local"\} ([0-9.e+-]+)/.exec(text)![1])
    expect(tps).toBeGreaterThan(0)
  })
})
