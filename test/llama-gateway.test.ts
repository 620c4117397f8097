import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LedgerEntry } from '../src/ledger/types.js'
import type { LlamaProvider } from '../src/providers/llama/index.js'
import { writeTinyLlamaGguf } from './gguf/tinyLlama.js'
import { TEAM_A_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'

// The real local model served live through the gateway (no cascade, no routing policy): a model name that
// points straight at a `kind: llama` provider, called with the openai SDK over HTTP.
let dir: string
let gw: TestGateway
let client: OpenAI
const PRICE = { input: 2, output: 4 } // USD per million tokens, for `tiny-priced`

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'sluice-llama-gateway-'))
  // end-of-turn suppressed: a greedy generation (or a seeded one, checked once) runs to its token limit, so lengths are known
  const info = await writeTinyLlamaGguf(join(dir, 'tiny.gguf'), { seed: 11, suppressEndOfTurn: true })
  gw = await startTestGateway({
    config: {
      providers: { local: { kind: 'llama', model_path: info.path, load: 'start', context_size: 1024, concurrency: 2, threads: 1 } },
      models: {
        tiny: { provider: 'local', model: 'tiny' },
        'tiny-priced': { provider: 'local', model: 'tiny', price: PRICE }
      }
    }
  })
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 })
}, 120_000)
afterAll(async () => {
  await gw?.close(0)
  if (dir) await rm(dir, { recursive: true, force: true })
})

const local = () => gw.gateway.runtime.providers.get('local') as LlamaProvider
const user = (content: string) => [{ role: 'user' as const, content }]

/** The ledger entries of one request (waits for the write: a stream settles after its last byte). */
async function entriesOf(requestId: string | null, until: (e: LedgerEntry[]) => boolean = (e) => e.length > 0): Promise<LedgerEntry[]> {
  const deadline = Date.now() + 10_000
  for (;;) {
    await gw.gateway.ledger.flush()
    const entries = (await gw.gateway.store.queryLedger({ team: 'a' })).filter((e) => e.request_id === requestId)
    if (until(entries) || Date.now() > deadline) return entries
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('the local model through the gateway', () => {
  it('answers non-streaming with real usage; the ledger has the local attempt at $0', async () => {
    const { data, response } = await client.chat.completions.create({ model: 'tiny', messages: user('hello there'), max_tokens: 10, temperature: 0 }).withResponse()
    expect(response.headers.get('x-sluice-route')).toBe('tiny')
    expect(data.object).toBe('chat.completion')
    expect(data.choices[0]!.finish_reason).toBe('length')
    expect(data.choices[0]!.message.content!.length).toBeGreaterThan(0)
    expect(data.usage!.completion_tokens).toBe(10)
    expect(data.usage!.prompt_tokens).toBeGreaterThan(0)
    const [entry, ...more] = await entriesOf(response.headers.get('x-sluice-request-id'))
    expect(more).toHaveLength(0)
    expect(entry).toMatchObject({ model: 'local/tiny', provider: 'local', stream: false, status: 'ok', estimated: false, cost_usd: 0 })
    expect(entry!.tokens.output).toBe(10)
    expect(entry!.tokens.input + entry!.tokens.cached_input).toBe(data.usage!.prompt_tokens)
  }, 60_000)

  it('streams live: tokens arrive as many chunks while the model is still generating, then the usage chunk', async () => {
    const stream = await client.chat.completions
      .create({ model: 'tiny-priced', messages: user('tell me a long story'), max_tokens: 300, temperature: 0, stream: true, stream_options: { include_usage: true } })
      .withResponse()
    const requestId = stream.response.headers.get('x-sluice-request-id')
    let contentChunks = 0
    let text = ''
    let activeAtFirstChunk: number | undefined
    let finish: string | null | undefined
    let usage: OpenAI.CompletionUsage | undefined
    const before = local().stats().completionTokensTotal
    for await (const c of stream.data) {
      const delta = c.choices[0]?.delta?.content
      if (delta) {
        contentChunks++
        text += delta
        // live, not buffered: when the first token reaches the client the sequence is still generating
        activeAtFirstChunk ??= local().stats().active
      }
      if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason
      if (c.usage) {
        expect(c.choices).toEqual([])
        usage = c.usage
      }
    }
    expect(contentChunks).toBeGreaterThan(10)
    expect(text.length).toBeGreaterThan(0)
    expect(activeAtFirstChunk).toBe(1)
    expect(local().stats().completionTokensTotal - before).toBe(300)
    expect(finish).toBe('length')
    expect(usage!.completion_tokens).toBe(300)
    const [entry, ...more] = await entriesOf(requestId)
    expect(more).toHaveLength(0)
    expect(entry).toMatchObject({ model: 'local/tiny', stream: true, status: 'ok', estimated: false })
    expect(entry!.tokens.output).toBe(300)
    expect(entry!.ttft_ms).toBeGreaterThanOrEqual(0)
    const expected = (entry!.tokens.input * PRICE.input + entry!.tokens.cached_input * PRICE.input + 300 * PRICE.output) / 1e6
    expect(entry!.cost_usd).toBeCloseTo(expected, 12)
    expect(entry!.cost_usd).toBeGreaterThan(0)
  }, 60_000)

  it('a stream without include_usage has no usage chunk but is still settled with real usage', async () => {
    const stream = await client.chat.completions.create({ model: 'tiny', messages: user('hi'), max_tokens: 5, temperature: 0, stream: true }).withResponse()
    let sawUsage = false
    for await (const c of stream.data) if (c.usage) sawUsage = true
    expect(sawUsage).toBe(false)
    const [entry] = await entriesOf(stream.response.headers.get('x-sluice-request-id'))
    expect(entry).toMatchObject({ stream: true, status: 'ok', estimated: false, cost_usd: 0 })
    expect(entry!.tokens.output).toBe(5)
  }, 60_000)

  it('returns token logprobs over HTTP, non-streamed and streamed', async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', messages: user('hello'), max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3 })
    })
    expect(res.status).toBe(200)
    const body = await res.json()
    const content = body.choices[0].logprobs.content as { token: string; logprob: number; top_logprobs: { logprob: number }[] }[]
    expect(content).toHaveLength(body.usage.completion_tokens)
    for (const t of content) {
      expect(Number.isFinite(t.logprob)).toBe(true)
      expect(t.logprob).toBeLessThanOrEqual(0)
      expect(t.top_logprobs).toHaveLength(3)
      // greedy: the chosen token is the most likely one
      expect(t.logprob).toBeCloseTo(t.top_logprobs[0]!.logprob, 5)
    }

    const stream = await client.chat.completions.create({ model: 'tiny', messages: user('hello'), max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3, stream: true })
    const streamed: { token: string; logprob: number }[] = []
    for await (const c of stream) streamed.push(...(c.choices[0]?.logprobs?.content ?? []))
    // same prompt, greedy: the stream carries the same tokens and probabilities
    expect(streamed.map((t) => t.token)).toEqual(content.map((t) => t.token))
    streamed.forEach((t, i) => expect(t.logprob).toBeCloseTo(content[i]!.logprob, 4))
  }, 60_000)

  it('a client that aborts mid-stream settles the attempt as aborted and frees the sequence', async () => {
    const controller = new AbortController()
    const before = local().stats().completionTokensTotal
    const stream = await client.chat.completions
      .create({ model: 'tiny', messages: user('never stop'), max_tokens: 900, temperature: 0, stream: true }, { signal: controller.signal })
      .withResponse()
    const requestId = stream.response.headers.get('x-sluice-request-id')
    let n = 0
    const seen: string[] = []
    let ended: unknown = 'the stream ended'
    await (async () => {
      for await (const c of stream.data) {
        seen.push(JSON.stringify(c.choices[0]?.delta ?? c))
        if (c.choices[0]?.delta?.content && ++n === 5) controller.abort()
      }
    })().catch((err: unknown) => (ended = err))
    // greedy: sampled at temperature 1 (even seeded) it ended early now and then on a drawn end-of-turn token;
    // said in full if it ever fails again: what came and how it ended
    expect(n, `${n} content chunks of ${seen.length}: ${seen.slice(0, 8).join(' ')}; ${String(ended)}`).toBe(5)
    const [entry] = await entriesOf(requestId)
    expect(entry).toMatchObject({ model: 'local/tiny', stream: true, status: 'aborted' })
    // generation stopped long before the 900 tokens it was allowed
    const deadline = Date.now() + 5_000
    while (local().stats().active > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
    expect(local().stats()).toMatchObject({ active: 0, queued: 0 })
    expect(local().stats().completionTokensTotal - before).toBeLessThan(300)
    // the sequence is free: the next requests are served (two at once: both sequences)
    const next = await Promise.all([0, 1].map(() => client.chat.completions.create({ model: 'tiny', messages: user('again'), max_tokens: 3, temperature: 0 })))
    for (const r of next) expect(r.usage!.completion_tokens).toBe(3)
  }, 60_000)
})
