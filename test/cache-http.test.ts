import { spawnSync } from 'node:child_process'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { LedgerEntry } from '../src/ledger/types.js'
import type { FakeAnthropic } from './fakes/anthropic.js'
import type { FakeOpenAI } from './fakes/openai.js'
import { TEAM_A_KEY, TEAM_B_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'
import { runRedisTests, startRedis, type TestRedis } from './helpers/redis.js'

const KEYS = {
  a: TEAM_A_KEY,
  b: TEAM_B_KEY,
  plain: 'sk-sluice-team-plain-000000000003',
  ttl: 'sk-sluice-team-ttl-00000000000004',
  loose: 'sk-sluice-team-loose-000000000005',
  nocache: 'sk-sluice-team-nocache-0000000006'
} as const
type Team = keyof typeof KEYS

const POLICIES = {
  // exact + semantic (builtin embedder, its measured default threshold)
  a: { cache: { semantic: { enabled: true } } },
  b: { cache: { semantic: { enabled: true } } },
  // no cache: section: no response caching, provider prompt caching with its defaults
  plain: {},
  ttl: { cache: { ttl_s: 1 } },
  // a low threshold, so only the meaning-flip guard stands between a flipped question and a hit
  loose: { cache: { semantic: { enabled: true, threshold: 0.5 } } },
  nocache: { cache: { enabled: false, provider: { enabled: false } } }
}

const keysConfig = Object.entries(KEYS).map(([team, key]) => ({ key, team }))

let stack: Stack<true>
let openai: FakeOpenAI
let anthropic: FakeAnthropic
let gw: TestGateway
const clients = {} as Record<Team, OpenAI>

beforeAll(async () => {
  ;({ fake: openai, anthropic, gw } = stack = await startStack({ anthropic: true, policies: POLICIES, config: { keys: keysConfig } }))
  for (const team of Object.keys(KEYS) as Team[]) clients[team] = stack.clientFor(KEYS[team])
})
afterAll(() => stack?.close())
beforeEach(() => stack.reset())

/** A question no other test asks, so tests do not see each other's entries. */
let n = 0
const fresh = (text = 'tell me about topic') => `${text} ${++n}-${Math.random().toString(36).slice(2, 8)}`

async function ask(team: Team, content: string, headers: Record<string, string> = {}, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}) {
  const { data, response } = await clients[team].chat.completions
    .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra }, { headers })
    .withResponse()
  return { data, headers: response.headers, cache: response.headers.get('x-sluice-cache'), id: response.headers.get('x-sluice-request-id')! }
}

async function askStream(team: Team, content: string, includeUsage: boolean) {
  const { data: stream, response } = await clients[team].chat.completions
    .create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}) })
    .withResponse()
  const chunks: OpenAI.ChatCompletionChunk[] = []
  for await (const c of stream) chunks.push(c)
  return { chunks, cache: response.headers.get('x-sluice-cache'), id: response.headers.get('x-sluice-request-id')! }
}

const text = (chunks: OpenAI.ChatCompletionChunk[]) => chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')

async function entriesOf(requestId: string): Promise<LedgerEntry[]> {
  await gw.gateway.ledger.flush()
  return (await gw.gateway.store.queryLedger({})).filter((e) => e.request_id === requestId)
}

async function metrics(): Promise<string> {
  return (await fetch(`${gw.url}/metrics`)).text()
}

function counter(body: string, line: string): number {
  const m = body.split('\n').find((l) => l.startsWith(line + ' '))
  return m ? Number(m.slice(line.length + 1)) : 0
}

describe('exact cache over HTTP (openai SDK)', () => {
  it('misses, then hits without calling the upstream; the hit costs $0 and records what it saved', async () => {
    const q = fresh()
    const first = await ask('a', q)
    expect(first.cache).toBe('miss')
    const calls = openai.requests.length
    const second = await ask('a', q)
    expect(second.cache).toBe('hit')
    expect(openai.requests.length).toBe(calls)
    expect(second.data.choices[0]!.message.content).toBe(first.data.choices[0]!.message.content)
    expect(second.data.usage).toEqual(first.data.usage)
    expect(second.data.id).not.toBe(first.data.id)
    expect(Number(second.headers.get('x-sluice-cost-usd'))).toBe(0)

    const [miss] = await entriesOf(first.id)
    const [hit, ...more] = await entriesOf(second.id)
    expect(more).toHaveLength(0)
    expect(miss!.cost_usd).toBeGreaterThan(0)
    expect(hit).toMatchObject({ status: 'cache_hit', provider: 'cache', cost_usd: 0, cache: 'hit', team: 'a' })
    expect(hit!.saved_usd).toBeCloseTo(miss!.cost_usd, 12)
  })

  it('replays a hit on a stream request as a well-formed SSE stream with the usage chunk', async () => {
    const q = fresh('count one two three four')
    const miss = await askStream('a', q, true)
    expect(miss.cache).toBe('miss')
    const calls = openai.requests.length
    const hit = await askStream('a', q, true)
    expect(hit.cache).toBe('hit')
    expect(openai.requests.length).toBe(calls)

    expect(text(hit.chunks)).toBe(text(miss.chunks))
    expect(hit.chunks[0]!.choices[0]!.delta.role).toBe('assistant')
    expect(new Set(hit.chunks.map((c) => c.id)).size).toBe(1)
    expect(hit.chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true)
    const finish = hit.chunks.filter((c) => c.choices[0]?.finish_reason)
    expect(finish.map((c) => c.choices[0]!.finish_reason)).toEqual(['stop'])
    const last = hit.chunks.at(-1)!
    expect(last.choices).toEqual([])
    const missUsage = miss.chunks.at(-1)!.usage!
    expect(last.usage).toMatchObject({ prompt_tokens: missUsage.prompt_tokens, completion_tokens: missUsage.completion_tokens, total_tokens: missUsage.total_tokens })
    // the usage chunk says what this request cost: nothing
    expect((last.usage as unknown as { sluice_cost_usd: number }).sluice_cost_usd).toBe(0)
    expect((missUsage as unknown as { sluice_cost_usd: number }).sluice_cost_usd).toBeGreaterThan(0)

    const [entry] = await entriesOf(hit.id)
    expect(entry).toMatchObject({ status: 'cache_hit', stream: true, cost_usd: 0 })
    expect(entry!.saved_usd).toBeGreaterThan(0)
  })

  it('shares entries between stream and non-stream requests, and leaves out the usage chunk when not asked', async () => {
    const q = fresh()
    const json = await ask('a', q)
    expect(json.cache).toBe('miss')
    const stream = await askStream('a', q, false)
    expect(stream.cache).toBe('hit')
    expect(text(stream.chunks)).toBe(json.data.choices[0]!.message.content)
    expect(stream.chunks.some((c) => c.usage)).toBe(false)
    const again = await ask('a', fresh('streamed first'))
    expect(again.cache).toBe('miss')
  })

  it('caches a streamed miss once the stream ends', async () => {
    const q = fresh()
    await askStream('a', q, false)
    const calls = openai.requests.length
    const json = await ask('a', q)
    expect(json.cache).toBe('hit')
    expect(openai.requests.length).toBe(calls)
  })

  it('honours Cache-Control: no-cache (no read), no-store (no write) and x-sluice-cache: off (neither)', async () => {
    const q = fresh()
    expect((await ask('a', q)).cache).toBe('miss')
    let calls = openai.requests.length

    expect((await ask('a', q, { 'cache-control': 'no-cache' })).cache).toBe('bypass')
    expect(openai.requests.length).toBe(++calls)
    expect((await ask('a', q, { 'x-sluice-cache': 'off' })).cache).toBe('bypass')
    expect(openai.requests.length).toBe(++calls)
    expect((await ask('a', q, { 'cache-control': 'no-store' })).cache).toBe('hit')
    expect(openai.requests.length).toBe(calls)

    const other = fresh()
    expect((await ask('a', other, { 'cache-control': 'no-store' })).cache).toBe('miss')
    expect((await ask('a', other)).cache).toBe('miss') // the no-store answer was not kept
    expect((await ask('a', other)).cache).toBe('hit')

    // no-cache still writes: the next plain request hits what it stored
    const third = fresh()
    expect((await ask('a', third, { 'cache-control': 'no-cache' })).cache).toBe('bypass')
    expect((await ask('a', third)).cache).toBe('hit')

    // x-sluice-cache: off does not write either
    const fourth = fresh()
    await ask('a', fourth, { 'x-sluice-cache': 'off' })
    expect((await ask('a', fourth)).cache).toBe('miss')
  })

  it('keys on every answer-changing field', async () => {
    const q = fresh()
    await ask('a', q, {}, { temperature: 0 })
    expect((await ask('a', q, {}, { temperature: 0 })).cache).toBe('hit')
    expect((await ask('a', q, {}, { temperature: 0.7 })).cache).toBe('miss')
    expect((await ask('a', q, {}, { temperature: 0, max_completion_tokens: 5 })).cache).toBe('miss')
    // fields that cannot change the answer do not split the cache
    expect((await ask('a', q, {}, { temperature: 0, user: 'someone-else', metadata: { run: 'x' } })).cache).toBe('hit')
  })

  it('never answers one team from another team’s entry', async () => {
    const q = fresh()
    const a = await ask('a', q)
    expect((await ask('a', q)).cache).toBe('hit')
    const b = await ask('b', q)
    expect(b.cache).toBe('miss')
    expect(openai.requests.at(-1)!.body.messages[0].content).toBe(q)
    expect((await entriesOf(b.id))[0]!.status).toBe('ok')
    expect(a.cache).toBe('miss')
  })

  it('says bypass, and calls the upstream every time, for a team without a cache: section', async () => {
    const q = fresh()
    const calls = openai.requests.length
    expect((await ask('plain', q)).cache).toBe('bypass')
    expect((await ask('plain', q)).cache).toBe('bypass')
    expect(openai.requests.length).toBe(calls + 2)
  })

  it('expires entries after ttl_s', async () => {
    const q = fresh()
    expect((await ask('ttl', q)).cache).toBe('miss')
    expect((await ask('ttl', q)).cache).toBe('hit')
    await new Promise((r) => setTimeout(r, 1100))
    expect((await ask('ttl', q)).cache).toBe('miss')
    expect((await ask('ttl', q)).cache).toBe('hit')
  })

  it('counts exact hits, misses and bypasses in sluice_cache_requests_total', async () => {
    const before = await metrics()
    const q = fresh()
    await ask('a', q)
    await ask('a', q)
    await ask('a', q, { 'x-sluice-cache': 'off' })
    const after = await metrics()
    for (const result of ['hit', 'miss', 'bypass']) {
      const line = `sluice_cache_requests_total{layer="exact",result="${result}",team="a"}`
      expect(counter(after, line) - counter(before, line)).toBe(1)
    }
    expect(counter(after, 'sluice_cache_saved_usd_total{layer="exact",team="a"}')).toBeGreaterThan(counter(before, 'sluice_cache_saved_usd_total{layer="exact",team="a"}'))
  })
})

describe('semantic cache over HTTP', () => {
  it('answers a rewording with semantic-hit and the similarity, from the original answer', async () => {
    const id = fresh('')
    const first = await ask('a', `How do I rotate the API keys of project ${id}?`)
    expect(first.cache).toBe('miss')
    const calls = openai.requests.length
    const second = await ask('a', `how do i rotate the api keys of project ${id}`)
    expect(second.cache).toBe('semantic-hit')
    expect(Number(second.headers.get('x-sluice-cache-similarity'))).toBeGreaterThanOrEqual(0.85)
    expect(second.data.choices[0]!.message.content).toBe(first.data.choices[0]!.message.content)
    expect(openai.requests.length).toBe(calls)
    const [entry] = await entriesOf(second.id)
    expect(entry).toMatchObject({ status: 'cache_hit', cache: 'semantic-hit', cost_usd: 0 })
    expect(entry!.saved_usd).toBeGreaterThan(0)
  })

  it('replays a semantic hit on a stream request', async () => {
    const id = fresh('')
    const first = await ask('a', `What does the retry budget of service ${id} do?`)
    const hit = await askStream('a', `what does the retry budget of service ${id} do`, true)
    expect(hit.cache).toBe('semantic-hit')
    expect(text(hit.chunks)).toBe(first.data.choices[0]!.message.content)
    expect(hit.chunks.at(-1)!.choices).toEqual([])
  })

  it('never answers one team from another team’s semantic entry', async () => {
    const id = fresh('')
    await ask('a', `What is the on-call rotation for ${id}?`)
    const b = await ask('b', `what is the on-call rotation for ${id}`)
    expect(b.cache).toBe('miss')
    expect((await ask('a', `what is the on-call rotation for ${id}`)).cache).toBe('semantic-hit')
  })

  it('does not hit across a different system prompt', async () => {
    const id = fresh('')
    await ask('a', `Summarise ticket ${id}`, {}, { messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: `Summarise ticket ${id}` }] })
    const other = await ask('a', '', {}, { messages: [{ role: 'system', content: 'You are verbose.' }, { role: 'user', content: `summarise ticket ${id}` }] })
    expect(other.cache).toBe('miss')
    const same = await ask('a', '', {}, { messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: `summarise ticket ${id}` }] })
    expect(same.cache).toBe('semantic-hit')
  })

  it('never hits across a negation, a polar word or a number, even at a loose threshold', async () => {
    const id = fresh('')
    const pairs = [
      [`Should I enable 2FA on account ${id}?`, `Should I disable 2FA on account ${id}?`],
      [`Is it safe to delete the logs of ${id}?`, `Is it not safe to delete the logs of ${id}?`],
      [`Show me the top 5 errors for ${id}`, `Show me the top 10 errors for ${id}`],
      [`Sort the users of ${id} in ascending order`, `Sort the users of ${id} in descending order`]
    ]
    for (const [asked, flipped] of pairs) {
      await ask('loose', asked!)
      const r = await ask('loose', flipped!)
      expect(r.cache, flipped).toBe('miss')
      expect(openai.requests.at(-1)!.body.messages[0].content).toBe(flipped)
    }
    // the same threshold does hit a plain rewording, so the misses above are the guard's doing
    expect((await ask('loose', `should i enable 2fa on account ${id}`)).cache).toBe('semantic-hit')
  })

  it('never hits a question that asks the reverse (same words swapped around to/than/and), even at a loose threshold', async () => {
    const id = fresh('')
    const pairs = [
      [`Translate this sentence from English to French ${id}`, `Translate this sentence from French to English ${id}`],
      [`convert 30 celsius to fahrenheit ${id}`, `convert 30 fahrenheit to celsius ${id}`],
      [`Is Python faster than Java ${id}?`, `Is Java faster than Python ${id}?`],
      [`difference between TCP and UDP ${id}`, `difference between UDP and TCP ${id}`]
    ]
    for (const [asked, reversed] of pairs) {
      await ask('loose', asked!)
      const r = await ask('loose', reversed!)
      expect(r.cache, reversed).toBe('miss')
      expect(openai.requests.at(-1)!.body.messages[0].content).toBe(reversed)
    }
    // a rewording in the same order still hits at that threshold
    expect((await ask('loose', `is python faster than java ${id}`)).cache).toBe('semantic-hit')
  })

  it('counts semantic lookups, hits and the index size', async () => {
    const id = fresh('')
    const before = await metrics()
    await ask('a', `Where are the release notes of ${id}?`)
    await ask('a', `where are the release notes of ${id}`)
    const after = await metrics()
    const hit = 'sluice_cache_requests_total{layer="semantic",result="hit",team="a"}'
    const miss = 'sluice_cache_requests_total{layer="semantic",result="miss",team="a"}'
    expect(counter(after, hit) - counter(before, hit)).toBe(1)
    expect(counter(after, miss) - counter(before, miss)).toBe(1)
    expect(counter(after, 'sluice_cache_semantic_lookup_seconds_count')).toBeGreaterThan(counter(before, 'sluice_cache_semantic_lookup_seconds_count'))
    expect(counter(after, 'sluice_cache_semantic_index_entries')).toBeGreaterThan(0)
  })
})

describe('cache keys follow the route an alias resolves to', () => {
  it('stops serving an alias’s old answers (exact and semantic) once a reload points it at another target', async () => {
    const own = await startTestGateway({
      openaiUrl: openai.url,
      openaiKey: openai.apiKey,
      policies: { a: { cache: { semantic: { enabled: true } }, routing: { routes: { smart: 'gpt-4o-mini' } } } }
    })
    try {
      const client = new OpenAI({ baseURL: `${own.url}/v1`, apiKey: KEYS.a, maxRetries: 0 })
      const ask = async (content: string) => {
        const { response } = await client.chat.completions.create({ model: 'smart', messages: [{ role: 'user', content }] }).withResponse()
        return response.headers.get('x-sluice-cache')
      }
      const q = fresh('Which region hosts the primary database of')
      expect(await ask(q)).toBe('miss')
      expect(await ask(q)).toBe('hit')
      expect(await ask(q.toLowerCase())).toBe('semantic-hit')

      // a reload that changes only prices keeps the entries
      const config = own.gateway.config
      const repriced = { ...config.models['gpt-4o-mini']!, price: { input: 9, output: 9 } }
      own.gateway.reload({ ...config, models: { ...config.models, 'gpt-4o-mini': repriced } })
      expect(await ask(q)).toBe('hit')

      // the alias now routes to gpt-4o: what gpt-4o-mini said is not its answer
      const policy = config.policies.a!
      own.gateway.reload({ ...config, policies: { ...config.policies, a: { ...policy, routing: { ...policy.routing!, routes: { smart: 'gpt-4o' } } } } })
      expect(await ask(q)).toBe('miss')
      expect(openai.requests.at(-1)!.body.model).toBe('gpt-4o')
      expect(await ask(q.toLowerCase())).toBe('semantic-hit') // the new route's own entry
      expect(await ask(q)).toBe('hit')

      // the model behind a plain alias moves too
      own.gateway.reload({ ...config, models: { ...config.models, 'gpt-4o-mini': { ...config.models['gpt-4o-mini']!, model: 'gpt-4.1-mini' } } })
      expect(await ask(q)).toBe('miss')
      expect(openai.requests.at(-1)!.body.model).toBe('gpt-4.1-mini')
    } finally {
      await own.close(0)
    }
  })
})

describe('provider prompt caching: token accounting', () => {
  it('OpenAI: prices cached_tokens at the cached rate, never twice, and records the saving', async () => {
    openai.script = () => ({ content: 'cached answer', promptTokens: 2000, cachedTokens: 1536, completionTokens: 10 })
    const before = await metrics()
    const r = await ask('plain', fresh())
    expect(r.data.usage!.prompt_tokens_details!.cached_tokens).toBe(1536)
    const [e] = await entriesOf(r.id)
    expect(e!.tokens).toEqual({ input: 464, output: 10, cached_input: 1536, cache_write: 0 })
    // gpt-4o-mini: input 0.15, cached_input 0.075, output 0.60 per million
    expect(e!.cost_usd).toBeCloseTo((464 * 0.15 + 1536 * 0.075 + 10 * 0.6) / 1e6, 12)
    expect(e!.saved_usd).toBeCloseTo((1536 * (0.15 - 0.075)) / 1e6, 12)
    expect(Number(r.headers.get('x-sluice-cost-usd'))).toBeCloseTo(e!.cost_usd, 9)
    const after = await metrics()
    const line = 'sluice_cache_requests_total{layer="provider",result="hit",team="plain"}'
    expect(counter(after, line) - counter(before, line)).toBe(1)
    expect(counter(after, 'sluice_cache_saved_tokens_total{layer="provider",team="plain"}') - counter(before, 'sluice_cache_saved_tokens_total{layer="provider",team="plain"}')).toBe(1536)
  })

  it('OpenAI: a call without cached tokens is a provider miss with no saving recorded', async () => {
    const before = await metrics()
    const r = await ask('plain', fresh())
    const [e] = await entriesOf(r.id)
    expect(e!.tokens.cached_input).toBe(0)
    expect(e!.saved_usd).toBeUndefined()
    const line = 'sluice_cache_requests_total{layer="provider",result="miss",team="plain"}'
    expect(counter(await metrics(), line) - counter(before, line)).toBe(1)
  })

  it('OpenAI stream: cached tokens from the usage chunk reach the ledger', async () => {
    openai.script = () => ({ content: 'streamed cached answer', promptTokens: 3000, cachedTokens: 2048 })
    const r = await askStream('plain', fresh(), true)
    expect(r.chunks.at(-1)!.usage!.prompt_tokens_details!.cached_tokens).toBe(2048)
    const [e] = await entriesOf(r.id)
    expect(e!.tokens.cached_input).toBe(2048)
    expect(e!.tokens.input).toBe(952)
    expect(e!.saved_usd).toBeCloseTo((2048 * 0.075) / 1e6, 12)
  })
})

describe('provider prompt caching: Anthropic breakpoints', () => {
  const system = 'You are a meticulous analyst of incident reports. '.repeat(120) // ~6,000 chars, over 1,024 tokens
  const strip = (v: unknown): unknown => JSON.parse(JSON.stringify(v, (k, x) => (k === 'cache_control' ? undefined : x)))
  const marks = (body: any): string[] => {
    const out: string[] = []
    ;(body.tools ?? []).forEach((t: any, i: number) => t.cache_control && out.push(`tools[${i}]`))
    if (Array.isArray(body.system)) body.system.forEach((b: any, i: number) => b.cache_control && out.push(`system[${i}]`))
    body.messages.forEach((m: any, i: number) => Array.isArray(m.content) && m.content.forEach((b: any, j: number) => b.cache_control && out.push(`messages[${i}][${j}]`)))
    return out
  }

  async function turn(team: Team, messages: OpenAI.ChatCompletionMessageParam[], stream = false) {
    if (stream) {
      const { data, response } = await clients[team].chat.completions
        .create({ model: 'claude-sonnet', messages, max_tokens: 200, stream: true, stream_options: { include_usage: true } })
        .withResponse()
      let content = ''
      let usage: OpenAI.CompletionUsage | undefined
      for await (const c of data) {
        content += c.choices[0]?.delta.content ?? ''
        if (c.usage) usage = c.usage
      }
      return { content, usage: usage!, id: response.headers.get('x-sluice-request-id')!, sent: anthropic.requests.at(-1)!.body as any }
    }
    const { data, response } = await clients[team].chat.completions.create({ model: 'claude-sonnet', messages, max_tokens: 200 }).withResponse()
    return { content: data.choices[0]!.message.content!, usage: data.usage!, id: response.headers.get('x-sluice-request-id')!, sent: anthropic.requests.at(-1)!.body as any }
  }

  it('places breakpoints, keeps the prefix bytes stable across turns, and accounts writes and reads', async () => {
    const sys = fresh(system)
    const messages: OpenAI.ChatCompletionMessageParam[] = [{ role: 'system', content: sys }, { role: 'user', content: 'First: what failed on Monday?' }]
    const t1 = await turn('plain', messages)
    expect(marks(t1.sent)).toEqual(['system[0]', 'messages[0][0]'])
    expect(t1.sent.system[0].cache_control).toEqual({ type: 'ephemeral' })
    expect(t1.usage.prompt_tokens_details!.cached_tokens).toBe(0)
    const w1 = (t1.usage as unknown as { cache_creation_input_tokens: number }).cache_creation_input_tokens
    expect(w1).toBeGreaterThan(1024)

    const [e1] = await entriesOf(t1.id)
    expect(e1!.tokens.cache_write).toBe(w1)
    // claude-sonnet-4-5: input 3, output 15, cached_input 0.30, cache_write 3.75 per million
    expect(e1!.cost_usd).toBeCloseTo((e1!.tokens.input * 3 + e1!.tokens.output * 15 + w1 * 3.75) / 1e6, 12)
    expect(e1!.saved_usd).toBeCloseTo(-(w1 * 0.75) / 1e6, 12) // the write premium, not yet read back

    messages.push({ role: 'assistant', content: t1.content }, { role: 'user', content: 'Second: and on Tuesday?' })
    const t2 = await turn('plain', messages)
    // system, the previous turn's final message, and the new final message
    expect(marks(t2.sent)).toEqual(['system[0]', 'messages[0][0]', 'messages[2][0]'])
    // what turn 1 sent is, markers aside, byte for byte the start of turn 2
    expect(JSON.stringify(strip(t2.sent.system))).toBe(JSON.stringify(strip(t1.sent.system)))
    expect(JSON.stringify(strip(t2.sent.messages.slice(0, 1)))).toBe(JSON.stringify(strip(t1.sent.messages)))
    const r2 = t2.usage.prompt_tokens_details!.cached_tokens!
    expect(r2).toBeGreaterThanOrEqual(w1)

    const [e2] = await entriesOf(t2.id)
    expect(e2!.tokens.cached_input).toBe(r2)
    expect(e2!.tokens.input + e2!.tokens.cached_input + e2!.tokens.cache_write).toBe(t2.usage.prompt_tokens)
    expect(e2!.cost_usd).toBeCloseTo((e2!.tokens.input * 3 + e2!.tokens.output * 15 + r2 * 0.3 + e2!.tokens.cache_write * 3.75) / 1e6, 12)
    expect(e2!.saved_usd).toBeCloseTo((r2 * 2.7 - e2!.tokens.cache_write * 0.75) / 1e6, 12)
    expect(e2!.saved_usd).toBeGreaterThan(0)

    messages.push({ role: 'assistant', content: t2.content }, { role: 'user', content: 'Third: and Wednesday?' })
    const t3 = await turn('plain', messages, true)
    expect(JSON.stringify(strip(t3.sent.messages.slice(0, 3)))).toBe(JSON.stringify(strip(t2.sent.messages)))
    expect(t3.usage.prompt_tokens_details!.cached_tokens).toBeGreaterThan(r2)
    const [e3] = await entriesOf(t3.id)
    expect(e3!.tokens.cached_input).toBe(t3.usage.prompt_tokens_details!.cached_tokens)
  })

  it('marks the tool definitions too, four breakpoints at most', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'search_incidents', description: fresh('Search the incident database. '.repeat(160)), parameters: { type: 'object', properties: { q: { type: 'string' } } } } }
    ]
    const { response } = await clients.plain.chat.completions
      .create({ model: 'claude-sonnet', max_tokens: 100, tools, messages: [{ role: 'system', content: fresh(system) }, { role: 'user', content: 'one' }, { role: 'assistant', content: 'ok' }, { role: 'user', content: 'two' }] })
      .withResponse()
    expect(response.status).toBe(200)
    const sent = anthropic.requests.at(-1)!.body as any
    expect(marks(sent)).toEqual(['tools[0]', 'system[0]', 'messages[0][0]', 'messages[2][0]'])
  })

  it('leaves short prompts, and teams that turn it off, untouched', async () => {
    await turn('plain', [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }])
    const short = anthropic.requests.at(-1)!.body as any
    expect(marks(short)).toEqual([])
    expect(typeof short.messages[0].content).toBe('string')

    await turn('nocache', [{ role: 'system', content: fresh(system) }, { role: 'user', content: 'hi' }])
    expect(marks(anthropic.requests.at(-1)!.body)).toEqual([])
  })

  it('places breakpoints on the native /v1/messages pass-through body too', async () => {
    const client = new Anthropic({ baseURL: gw.url, apiKey: KEYS.plain, maxRetries: 0 })
    const sys = fresh(system)
    const first = await client.messages.create({ model: 'claude-sonnet', max_tokens: 100, system: sys, messages: [{ role: 'user', content: 'What failed?' }] })
    const sent = anthropic.requests.at(-1)!.body as any
    expect(marks(sent)).toEqual(['system[0]', 'messages[0][0]'])
    expect(first.usage.cache_creation_input_tokens).toBeGreaterThan(1024)
    const second = await client.messages.create({
      model: 'claude-sonnet',
      max_tokens: 100,
      system: sys,
      messages: [{ role: 'user', content: 'What failed?' }, { role: 'assistant', content: first.content as Anthropic.ContentBlockParam[] }, { role: 'user', content: 'Why?' }]
    })
    expect(second.usage.cache_read_input_tokens).toBeGreaterThanOrEqual(first.usage.cache_creation_input_tokens!)
  })
})

describe.runIf(runRedisTests)('exact cache on Redis, shared by two gateway instances', () => {
  let redis: TestRedis
  let one: TestGateway
  let two: TestGateway

  beforeAll(async () => {
    redis = await startRedis()
    const opts = {
      openaiUrl: openai.url,
      openaiKey: openai.apiKey,
      policies: POLICIES,
      config: { keys: keysConfig, store: { kind: 'redis', url: redis.url, prefix: 'cachetest:' } }
    }
    one = await startTestGateway(opts)
    two = await startTestGateway(opts)
  })
  afterAll(async () => {
    await one?.close(0)
    await two?.close(0)
    await redis?.stop()
  })

  it('a miss on one instance is a hit on the other, stream and non-stream; teams stay apart', async () => {
    const c1 = new OpenAI({ baseURL: `${one.url}/v1`, apiKey: KEYS.a, maxRetries: 0 })
    const c2 = new OpenAI({ baseURL: `${two.url}/v1`, apiKey: KEYS.a, maxRetries: 0 })
    const b2 = new OpenAI({ baseURL: `${two.url}/v1`, apiKey: KEYS.b, maxRetries: 0 })
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: fresh('shared across instances') }] }
    const exactKeys = () => spawnSync('redis-cli', ['-p', String(redis.port), '--scan', '--pattern', 'cachetest:cache:cache:x:*']).stdout.toString().trim().split('\n').filter(Boolean).length
    const before = exactKeys()
    const first = await c1.chat.completions.create(body).withResponse()
    expect(first.response.headers.get('x-sluice-cache')).toBe('miss')
    // the answer is written after the response: another instance sees it once the write lands
    await expect.poll(exactKeys).toBe(before + 1)
    const calls = openai.requests.length
    const second = await c2.chat.completions.create(body).withResponse()
    expect(second.response.headers.get('x-sluice-cache')).toBe('hit')
    expect(second.data.choices[0]!.message.content).toBe(first.data.choices[0]!.message.content)
    expect(openai.requests.length).toBe(calls)

    const streamed = await c2.chat.completions.create({ ...body, stream: true }).withResponse()
    expect(streamed.response.headers.get('x-sluice-cache')).toBe('hit')
    let content = ''
    for await (const c of streamed.data) content += c.choices[0]?.delta.content ?? ''
    expect(content).toBe(first.data.choices[0]!.message.content)

    expect((await b2.chat.completions.create(body).withResponse()).response.headers.get('x-sluice-cache')).toBe('miss')
    // team b's answer is written after its response too
    await expect.poll(exactKeys).toBe(before + 2)
    // entries live in Redis with the policy's TTL (3600 s by default)
    const keys = spawnSync('redis-cli', ['-p', String(redis.port), '--scan', '--pattern', 'cachetest:cache:cache:x:*']).stdout.toString().trim().split('\n')
    expect(keys.length).toBeGreaterThanOrEqual(2)
    const ttl = Number(spawnSync('redis-cli', ['-p', String(redis.port), 'pttl', keys[0]!]).stdout.toString().trim())
    expect(ttl).toBeGreaterThan(3_000_000)
    expect(ttl).toBeLessThanOrEqual(3_600_000)
  })
})
