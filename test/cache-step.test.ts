import { Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { createContext } from '../src/auth/context.js'
import { teamPolicySchema } from '../src/config/schema.js'
import type { PipelineResult, RequestContext, Step } from '../src/context.js'
import { canonicalJson, exactCacheKey, routeFingerprint, TEXT_KEY_MAX_CHARS, tenantScope } from '../src/cache/key.js'
import { createChunkAssembler } from '../src/cache/replay.js'
import { createSemanticCache } from '../src/cache/semantic.js'
import { createCacheStep, type CacheStepDeps } from '../src/cache/step.js'
import type { LedgerEntry } from '../src/ledger/types.js'
import { createPipeline } from '../src/pipeline.js'
import { createMemoryStore } from '../src/store/memory.js'
import type { ChatChunk, ChatCompletion, ChatRequest } from '../src/types.js'
import { createBuiltinEmbedder } from '../src/vector/embedders.js'
import { createMemoryIndex } from '../src/vector/memory.js'
import { atTurnEnd } from '../src/turn.js'
import { chatContext } from './helpers/context.js'

const COST = 0.0042

/** A pretend upstream: answers with a text that depends on the request, records each call and its cost. */
function upstream(opts: { chunkGate?: Promise<void>; failStream?: boolean; content?: (req: ChatRequest) => string } = {}) {
  const calls: ChatRequest[] = []
  const answer = (req: ChatRequest) => opts.content?.(req) ?? `answer #${calls.length} to ${JSON.stringify(req.messages.at(-1)?.content)}`
  const step: Step = async (ctx) => {
    calls.push(ctx.request)
    ctx.attempts.push({ target: 't', provider: 'openai', model: 'gpt', status: 'ok', costUsd: COST, latencyMs: 1, usage: { prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 } })
    ctx.costUsd += COST
    const text = answer(ctx.request)
    if (!ctx.stream) {
      return {
        type: 'json',
        body: { id: 'up-1', object: 'chat.completion', created: 1, model: 'gpt', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage: { prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 } }
      }
    }
    const words = text.split(' ')
    async function* gen(): AsyncGenerator<ChatChunk> {
      const base = { id: 'up-s', object: 'chat.completion.chunk' as const, created: 1, model: 'gpt' }
      yield { ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }
      for (const [i, w] of words.entries()) {
        if (i === 1 && opts.chunkGate) await opts.chunkGate
        if (i === 2 && opts.failStream) throw new Error('upstream reset')
        yield { ...base, choices: [{ index: 0, delta: { content: (i ? ' ' : '') + w }, finish_reason: null }] }
      }
      yield { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }
      yield { ...base, choices: [], usage: { prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 } }
    }
    return { type: 'stream', stream: gen() }
  }
  return { step, calls }
}

function harness(extra: Partial<CacheStepDeps> & { clock?: { t: number } } = {}) {
  const clock = extra.clock ?? { t: 1_700_000_000_000 }
  const store = createMemoryStore({ now: () => clock.t })
  const registry = new Registry()
  const ledger: LedgerEntry[] = []
  const embedder = createBuiltinEmbedder()
  const semantic = createSemanticCache({ embedder, index: createMemoryIndex({ dimensions: embedder.dimensions! }) })
  const up = upstream()
  const cache = createCacheStep({ store, registry, semantic, ledger: { record: (e) => ledger.push(e) }, now: () => clock.t, ...extra })
  const run = createPipeline([cache, up.step])
  async function send(input: { team?: string; policy?: unknown; request?: Partial<ChatRequest>; headers?: Record<string, string>; text?: string; system?: string }) {
    const request: ChatRequest = {
      model: 'fast',
      messages: [...(input.system ? [{ role: 'system' as const, content: input.system }] : []), { role: 'user', content: input.text ?? 'What is the capital of France?' }],
      temperature: 0,
      ...input.request
    }
    const ctx = createContext({
      principal: { team: input.team ?? 'a', keyId: 'k1' },
      policy: teamPolicySchema.parse(input.policy === null ? {} : { cache: input.policy ?? { semantic: { enabled: true } } }),
      headers: input.headers ?? {},
      request,
      surface: 'chat',
      signal: new AbortController().signal
    })
    const result = await run(ctx)
    return { ctx, result, body: await bodyOf(result) }
  }
  return { send, store, registry, ledger, calls: up.calls, clock, semantic }
}

async function bodyOf(result: PipelineResult): Promise<{ content: string; chunks?: ChatChunk[]; completion: ChatCompletion }> {
  if (result.type === 'json') return { content: result.body.choices[0]!.message.content as string, completion: result.body }
  const chunks: ChatChunk[] = []
  const asm = createChunkAssembler()
  for await (const c of result.stream) {
    chunks.push(c)
    asm.add(c)
  }
  const completion = asm.result()!
  return { content: completion.choices[0]!.message.content as string, chunks, completion }
}

const header = (ctx: RequestContext) => ctx.responseHeaders['x-sluice-cache']

describe('exact cache', () => {
  it('misses, then hits with the same answer at $0, recording the saved cost', async () => {
    const h = harness()
    const first = await h.send({})
    expect(header(first.ctx)).toBe('miss')
    expect(first.ctx.cache).toBe('miss')
    const second = await h.send({})
    expect(header(second.ctx)).toBe('hit')
    expect(second.ctx.cache).toBe('hit')
    expect(second.body.content).toBe(first.body.content)
    expect(h.calls).toHaveLength(1)
    expect(second.ctx.costUsd).toBe(0)
    expect(second.ctx.savedUsd).toBeCloseTo(COST, 12)
    expect(h.ledger).toHaveLength(1)
    expect(h.ledger[0]).toMatchObject({ status: 'cache_hit', cost_usd: 0, saved_usd: COST, team: 'a', model: 'cache', cache: 'hit' })
  })

  it('keys short requests by their canonical text in an in-process store, long ones and shared stores by its SHA-256', () => {
    const tenant = tenantScope('a', undefined)
    const short = { model: 'fast', messages: [{ role: 'user' as const, content: 'hi' }] }
    const text = exactCacheKey({ tenant, alias: 'fast', request: short, inProcess: true })
    expect(text).toBe('cache:t:' + canonicalJson({ v: 1, tenant, alias: 'fast', req: { messages: short.messages } }))
    expect(exactCacheKey({ tenant, alias: 'fast', request: short })).toMatch(/^cache:x:[0-9a-f]{64}$/)
    // key order does not matter in either form; the team does
    expect(exactCacheKey({ tenant, alias: 'fast', request: { messages: short.messages, model: 'fast' }, inProcess: true })).toBe(text)
    expect(exactCacheKey({ tenant: tenantScope('b', undefined), alias: 'fast', request: short, inProcess: true })).not.toBe(text)
    const long = { model: 'fast', messages: [{ role: 'user' as const, content: 'x'.repeat(TEXT_KEY_MAX_CHARS) }] }
    expect(exactCacheKey({ tenant, alias: 'fast', request: long, inProcess: true })).toMatch(/^cache:x:[0-9a-f]{64}$/)
  })

  it('serves a hit for a request too long to be keyed by its text', async () => {
    const h = harness({ semantic: undefined })
    const text = 'a long question '.repeat(200)
    const first = await h.send({ text })
    expect(header(first.ctx)).toBe('miss')
    await expect.poll(() => h.store.cacheGet(exactCacheKey({ tenant: tenantScope('a', undefined), alias: 'fast', request: first.ctx.request }))).not.toBeNull()
    expect(header((await h.send({ text })).ctx)).toBe('hit')
    expect(h.calls).toHaveLength(1)
  })

  it('keys a "__proto__" request field like any other field', () => {
    const withProto = JSON.parse('{"model":"fast","messages":[],"__proto__":{"x":1}}')
    const plain = { model: 'fast', messages: [] }
    const key = (request: any) => exactCacheKey({ tenant: tenantScope('a', undefined), alias: 'fast', request })
    expect(key(withProto)).not.toBe(key(plain))
  })

  it('never answers one team with another team\'s entry, unless both share a cache scope', async () => {
    const h = harness()
    await h.send({ team: 'a' })
    const b = await h.send({ team: 'b' })
    expect(header(b.ctx)).toBe('miss')
    expect(h.calls).toHaveLength(2)
    expect(exactCacheKey({ tenant: tenantScope('a', undefined), alias: 'fast', request: { model: 'fast', messages: [] } })).not.toBe(
      exactCacheKey({ tenant: tenantScope('b', undefined), alias: 'fast', request: { model: 'fast', messages: [] } })
    )
    // a policy scope named like a team does not read that team's entries
    expect(header((await h.send({ team: 'c', policy: { scope: 'a' } })).ctx)).toBe('miss')
    await h.send({ team: 'x', policy: { scope: 'shared' }, text: 'shared question' })
    expect(header((await h.send({ team: 'y', policy: { scope: 'shared' }, text: 'shared question' })).ctx)).toBe('hit')
  })

  it('keys on every answer-changing field, not on stream, user or key order', async () => {
    const h = harness({ semantic: undefined })
    await h.send({ request: { temperature: 0, max_tokens: 50 } })
    for (const change of [{ max_tokens: 51 }, { seed: 1 }, { stop: ['x'] }, { top_p: 0.5 }, { n: 2 }, { logprobs: true }, { response_format: { type: 'json_object' as const } }, { tools: [{ type: 'function' as const, function: { name: 'f' } }] }, { tool_choice: 'none' }, { vendor_knob: 1 }, { model: 'other' }]) {
      const r = await h.send({ request: { temperature: 0, max_tokens: 50, ...change } })
      expect(header(r.ctx), JSON.stringify(change)).toBe('miss')
    }
    const sameish = await h.send({ request: { max_tokens: 50, temperature: 0, user: 'someone', metadata: { x: 'y' } } })
    expect(header(sameish.ctx)).toBe('hit')
  })

  it('honours the client opt-outs', async () => {
    const h = harness({ semantic: undefined })
    await h.send({})
    const noCache = await h.send({ headers: { 'cache-control': 'no-cache' } })
    expect(header(noCache.ctx)).toBe('bypass')
    expect(h.calls).toHaveLength(2) // did not read...
    const off = await h.send({ headers: { 'x-sluice-cache': 'off' }, text: 'q2' })
    expect(header(off.ctx)).toBe('bypass')
    expect(header((await h.send({ text: 'q2' })).ctx)).toBe('miss') // ...off did not write
    const noStore = await h.send({ headers: { 'cache-control': 'no-store' }, text: 'q3' })
    expect(header(noStore.ctx)).toBe('miss')
    expect(header((await h.send({ text: 'q3' })).ctx)).toBe('miss') // no-store did not write
    expect(header((await h.send({ headers: { 'cache-control': 'no-store' }, text: 'q3' })).ctx)).toBe('hit') // but reads
  })

  it('expires entries after ttl_s', async () => {
    const h = harness({ semantic: undefined })
    await h.send({ policy: { ttl_s: 10 } })
    h.clock.t += 9_000
    expect(header((await h.send({ policy: { ttl_s: 10 } })).ctx)).toBe('hit')
    h.clock.t += 2_000
    expect(header((await h.send({ policy: { ttl_s: 10 } })).ctx)).toBe('miss')
  })

  it('caches only temperature 0 under when: temperature_zero, and nothing without a cache section', async () => {
    const h = harness()
    const hot = await h.send({ policy: { when: 'temperature_zero' }, request: { temperature: 0.7 } })
    expect(header(hot.ctx)).toBe('bypass')
    expect(header((await h.send({ policy: { when: 'temperature_zero' }, request: { temperature: 0.7 } })).ctx)).toBe('bypass')
    await h.send({ policy: { when: 'temperature_zero' } })
    expect(header((await h.send({ policy: { when: 'temperature_zero' } })).ctx)).toBe('hit')
    await h.send({ team: 'n', policy: null, text: 'no cache section' })
    const none = await h.send({ team: 'n', policy: null, text: 'no cache section' })
    expect(header(none.ctx)).toBe('bypass')
    const off = await h.send({ team: 'n', policy: { enabled: false }, text: 'no cache section' })
    expect(header(off.ctx)).toBe('bypass')
    expect(h.calls).toHaveLength(6)
  })

  it('returns a miss without waiting for the write; a re-ask on the instance waits for it and hits; write errors are reported', async () => {
    const store = createMemoryStore()
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let failNext = false
    const slow: typeof store = Object.create(store)
    slow.cacheSet = async (key, value, ttlMs) => {
      await gate
      if (failNext) throw new Error('redis is away')
      return store.cacheSet(key, value, ttlMs)
    }
    const errors: string[] = []
    const h = harness({ store: slow, semantic: undefined, onError: (err, where) => errors.push(`${where}: ${(err as Error).message}`) })
    const first = await h.send({}) // returns while the write is held at the gate
    expect(header(first.ctx)).toBe('miss')
    expect(await store.cacheGet(exactCacheKey({ tenant: tenantScope('a', undefined), alias: 'fast', request: first.ctx.request, inProcess: true }))).toBeNull()
    const again = h.send({})
    release()
    expect(header((await again).ctx)).toBe('hit')
    expect(h.calls).toHaveLength(1)

    failNext = true
    const other = await h.send({ text: 'a question whose write fails' })
    expect(header(other.ctx)).toBe('miss')
    await expect.poll(() => errors).toEqual(['cache write: redis is away'])
  })

  it('starts the write at the end of the turn, after the answer and its continuations (semantic insert included)', async () => {
    const store = createMemoryStore()
    const writes: string[] = []
    const watched: typeof store = Object.create(store)
    watched.cacheSet = async (key, value, ttlMs) => {
      writes.push(key)
      return store.cacheSet(key, value, ttlMs)
    }
    const h = harness({ store: watched })
    const first = await h.send({})
    expect(header(first.ctx)).toBe('miss')
    // the answer's way to the socket takes some microtasks: none of them runs the write
    for (let i = 0; i < 50; i++) await Promise.resolve()
    expect(writes).toEqual([])
    await new Promise<void>((r) => setImmediate(r))
    // exact entry, then the semantic one, from the turn's end
    await expect.poll(() => writes.length).toBe(2)
    expect(header((await h.send({})).ctx)).toBe('hit')
  })

  it("sends the semantic entry without waiting for the exact entry's write (on Redis, one write for both)", async () => {
    const store = createMemoryStore()
    const writes: string[] = []
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    const held: typeof store = Object.create(store)
    // the exact entry's write stays unanswered, as a Redis reply not yet read
    held.cacheSet = async (key, value, ttlMs) => {
      writes.push(key)
      if (writes.length === 1) await gate
      return store.cacheSet(key, value, ttlMs)
    }
    const errors: string[] = []
    const h = harness({ store: held, onError: (err, where) => errors.push(`${where}: ${(err as Error).message}`) })
    expect(header((await h.send({})).ctx)).toBe('miss')
    await expect.poll(() => writes.length).toBe(2)
    release()
    expect(header((await h.send({})).ctx)).toBe('hit')
    expect(errors).toEqual([])
  })

  it('searches the semantic index at once in an idle turn, and at the end of a busy one with its other lookups', async () => {
    const embedder = createBuiltinEmbedder()
    const index = createMemoryIndex({ dimensions: embedder.dimensions! })
    const searched: string[] = []
    const watched: typeof index = Object.create(index)
    watched.search = (vector, query) => {
      searched.push(query.scope)
      return index.search(vector, query)
    }
    const h = harness({ semantic: createSemanticCache({ embedder, index: watched }) })
    // idle: nothing queued for the turn's end, so nothing to wait for
    const alone = h.send({ text: 'a lone question', system: 'agent zero' })
    for (let i = 0; i < 50; i++) await Promise.resolve()
    expect(searched).toHaveLength(1)
    await alone
    await new Promise<void>((r) => setImmediate(r)) // its cache write
    searched.length = 0
    // busy: work queued for the turn's end (another request's cache write, say)
    atTurnEnd(() => {})
    const asked = [h.send({ text: 'first question', system: 'agent one' }), h.send({ text: 'second question', system: 'agent two' })]
    for (let i = 0; i < 50; i++) await Promise.resolve()
    expect(searched).toEqual([])
    await Promise.all(asked)
    // two scopes (the system prompts differ), one search each
    expect(new Set(searched).size).toBe(2)
  })

  it('gives every hit its own answer: a later step that rewrites the served message leaves the next hit as stored', async () => {
    const store = createMemoryStore()
    const up = upstream({ content: () => 'mail me at bob@example.com' })
    const cache = createCacheStep({ store, now: () => 1_700_000_000_000 })
    // what the output guard does to a JSON answer: rewrites each choice's message in place
    const rewrite: Step = async (_ctx, next) => {
      const result = await next()
      if (result.type === 'json') for (const c of result.body.choices) c.message.content = 'rewritten for this caller'
      return result
    }
    const request = { model: 'fast', messages: [{ role: 'user' as const, content: 'hi' }] }
    const key = exactCacheKey({ tenant: tenantScope('a', undefined), alias: 'fast', request, inProcess: true })
    const ask = (run: ReturnType<typeof createPipeline>) => run(chatContext({ policy: { cache: {} }, request }))
    const rewriting = createPipeline([rewrite, cache, up.step])
    await ask(rewriting)
    await expect.poll(async () => store.cacheGet(key)).not.toBeNull()
    for (let i = 0; i < 3; i++) {
      const hit = await ask(rewriting)
      expect(hit.type === 'json' && hit.body.choices[0]!.message.content).toBe('rewritten for this caller')
    }
    expect(JSON.parse((await store.cacheGet(key))!).completion.choices[0].message.content).toBe('mail me at bob@example.com')
    // the shared parse was not touched either: a pipeline without the rewriting step gets the stored text
    const read = await ask(createPipeline([cache, up.step]))
    expect(read.type === 'json' && read.body.choices[0]!.message.content).toBe('mail me at bob@example.com')
    expect(up.calls).toHaveLength(1)
  })

  it('reads an entry afresh when the store holds a different text under its key', async () => {
    const h = harness({ semantic: undefined })
    const first = await h.send({})
    const key = exactCacheKey({ tenant: tenantScope('a', undefined), alias: 'fast', request: first.ctx.request, inProcess: true })
    await expect.poll(() => h.store.cacheGet(key)).not.toBeNull()
    expect((await h.send({})).body.content).toBe(first.body.content)
    // another instance (or a reload) wrote a new answer under the same key
    const entry = JSON.parse((await h.store.cacheGet(key))!)
    entry.completion.choices[0].message.content = 'a newer answer'
    await h.store.cacheSet(key, JSON.stringify(entry), 60_000)
    expect((await h.send({})).body.content).toBe('a newer answer')
  })

  it('does not store answers over max_entry_bytes', async () => {
    const h = harness({ semantic: undefined })
    await h.send({ policy: { max_entry_bytes: 100 } })
    expect(header((await h.send({ policy: { max_entry_bytes: 100 } })).ctx)).toBe('miss')
  })
})

describe('route fingerprint', () => {
  const config = {
    providers: {
      openai: { kind: 'openai', base_url: 'https://api.openai.com/v1' },
      proxy: { kind: 'openai', base_url: 'https://proxy.internal/v1' },
      local: { kind: 'llama', model_path: '/models/qwen.gguf' }
    },
    models: {
      mini: { provider: 'openai', model: 'gpt-4o-mini', type: 'chat', price: { input: 0.15, output: 0.6 } },
      big: { provider: 'openai', model: 'gpt-4o', type: 'chat', price: { input: 2.5, output: 10 } },
      qwen: { provider: 'local', model: 'qwen', type: 'chat', price: { input: 0, output: 0 } }
    }
  } as unknown as Parameters<typeof routeFingerprint>[0]
  const policy = teamPolicySchema.parse({
    routing: { routes: { smart: { cascade: [{ route: 'qwen', checks: { judge: { target: 'mini' } } }, { route: 'big' }] }, fast: 'mini' } }
  })
  const fp = (c = config, p = policy, alias = 'smart') => routeFingerprint(c, p, alias)
  const withModel = (name: string, patch: object) => ({ ...config, models: { ...config.models, [name]: { ...config.models[name]!, ...patch } } })

  it('changes with the route and with every model or endpoint it can reach, judges included', () => {
    expect(fp()).toMatch(/^r:[0-9a-f]{32}$/)
    expect(fp()).toBe(fp())
    expect(fp(config, policy, 'fast')).not.toBe(fp())
    expect(fp(config, policy, 'mini')).toBeDefined() // a plain model alias
    expect(fp(withModel('big', { model: 'gpt-4.1' }))).not.toBe(fp())
    expect(fp(withModel('mini', { provider: 'proxy' }))).not.toBe(fp()) // the judge's endpoint
    expect(fp({ ...config, providers: { ...config.providers, local: { kind: 'llama', model_path: '/models/other.gguf' } } } as never)).not.toBe(fp())
    const rerouted = teamPolicySchema.parse({ routing: { routes: { smart: { cascade: [{ route: 'qwen' }, { route: 'mini' }] } } } })
    expect(fp(config, rerouted)).not.toBe(fp())
  })

  it('ignores prices, and is undefined for an alias that resolves to nothing', () => {
    expect(fp(withModel('big', { price: { input: 1, output: 1 } }))).toBe(fp())
    expect(fp(config, policy, 'nope')).toBeUndefined()
  })

  it('splits exact keys', () => {
    const request = { model: 'smart', messages: [{ role: 'user' as const, content: 'hi' }] }
    expect(exactCacheKey({ tenant: 't', alias: 'smart', route: fp(), request })).not.toBe(exactCacheKey({ tenant: 't', alias: 'smart', route: fp(withModel('big', { model: 'o3' })), request }))
  })
})

describe('streams', () => {
  it('passes chunks through as they arrive, stores the assembled answer, replays it as a well-formed stream', async () => {
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    const clock = { t: 1_700_000_000_000 }
    const store = createMemoryStore({ now: () => clock.t })
    const up = upstream({ chunkGate: gate })
    const run = createPipeline([createCacheStep({ store, now: () => clock.t }), up.step])
    const mk = (stream: boolean, includeUsage = false) =>
      chatContext({
        policy: { cache: {} },
        request: { model: 'fast', messages: [{ role: 'user', content: 'tell me a story' }], stream, ...(includeUsage ? { stream_options: { include_usage: true } } : {}) }
      })
    const first = await run(mk(true))
    if (first.type !== 'stream') throw new Error('expected a stream')
    const it = first.stream[Symbol.asyncIterator]()
    // the first chunk arrives while the upstream is still blocked on the second: nothing is buffered
    expect((await it.next()).value.choices[0].delta.role).toBe('assistant')
    open()
    const rest: ChatChunk[] = []
    for (let r = await it.next(); !r.done; r = await it.next()) rest.push(r.value)
    const original = rest.map((c) => c.choices[0]?.delta.content ?? '').join('')

    const ctx = mk(true, true)
    const replay = await run(ctx)
    expect(ctx.cache).toBe('hit')
    const { chunks, completion } = await bodyOf(replay)
    expect(completion.choices[0]!.message.content).toBe(original)
    // shape: same id on every chunk, role first, finish chunk, then the usage chunk with choices: []
    expect(new Set(chunks!.map((c) => c.id)).size).toBe(1)
    expect(chunks!.every((c) => c.object === 'chat.completion.chunk')).toBe(true)
    expect(chunks![0]!.choices[0]!.delta.role).toBe('assistant')
    expect(chunks!.at(-2)!.choices[0]!.finish_reason).toBe('stop')
    expect(chunks!.at(-1)).toMatchObject({ choices: [], usage: { prompt_tokens: 30, completion_tokens: 12, total_tokens: 42 } })
    expect(chunks!.slice(0, -1).every((c) => c.usage === null)).toBe(true)

    // without include_usage: no usage chunk; and a JSON request hits the streamed entry
    const noUsage = await bodyOf(await run(mk(true)))
    expect(noUsage.chunks!.every((c) => c.choices.length === 1 && c.usage === undefined)).toBe(true)
    const json = await run(mk(false))
    expect(json.type === 'json' && json.body.choices[0]!.message.content).toBe(original)
    expect(up.calls).toHaveLength(1)
  })

  it('does not store a stream that failed or that the client abandoned', async () => {
    const store = createMemoryStore()
    const failing = upstream({ failStream: true })
    const run = createPipeline([createCacheStep({ store }), failing.step])
    const mk = () => chatContext({ policy: { cache: {} }, request: { model: 'm', messages: [{ role: 'user', content: 'one two three four' }], stream: true } })
    await expect(bodyOf(await run(mk()))).rejects.toThrow('upstream reset')
    const abandoned = await run(mk())
    if (abandoned.type !== 'stream') throw new Error('expected a stream')
    for await (const _ of abandoned.stream) break
    const again = mk()
    await run(again).catch(() => undefined)
    expect(again.cache).toBe('miss')
  })
})

describe('semantic cache', () => {
  it('answers without the semantic layer when its lookup fails, and reports the error', async () => {
    // e.g. the memory index refusing to walk an LSH chain that does not end (broken links) rather than hang
    const errors: string[] = []
    const embedder = createBuiltinEmbedder()
    const index = createMemoryIndex({ dimensions: embedder.dimensions! })
    const broken = { ...index, search: async () => Promise.reject(new Error('vector index: an LSH chain in scope s does not end (broken links)')) }
    const h = harness({ semantic: createSemanticCache({ embedder, index: broken }), onError: (err, where) => errors.push(`${where}: ${(err as Error).message}`) })
    const r = await h.send({ text: 'how do I reset my password' })
    expect(header(r.ctx)).toBe('miss')
    expect(r.body.content.length).toBeGreaterThan(0) // the upstream's answer
    expect(h.calls).toHaveLength(1)
    expect(errors).toEqual(['semantic lookup: vector index: an LSH chain in scope s does not end (broken links)'])
  })

  it('answers a rewording with a semantic hit and its similarity', async () => {
    const h = harness()
    await h.send({ text: 'How do I reset my password?' })
    const r = await h.send({ text: 'how do I reset my password' })
    expect(header(r.ctx)).toBe('semantic-hit')
    expect(r.ctx.cache).toBe('semantic-hit')
    expect(Number(r.ctx.responseHeaders['x-sluice-cache-similarity'])).toBeGreaterThanOrEqual(0.9)
    expect(r.ctx.savedUsd).toBeCloseTo(COST, 12)
    expect(h.calls).toHaveLength(1)
  })

  it.each([
    ['How do I enable two-factor authentication on my account?', 'How do I disable two-factor authentication on my account?'],
    ['Show me the orders that were shipped last week', 'Show me the orders that were not shipped last week'],
    ['List the top 5 customers by revenue this quarter', 'List the top 10 customers by revenue this quarter'],
    ['Should I never restart the database during backups?', 'Should I restart the database during backups?'],
    ['Sort the table by created date in ascending order', 'Sort the table by created date in descending order']
  ])('never hits across a meaning flip: %s / %s', async (a, b) => {
    const h = harness()
    await h.send({ text: a, policy: { semantic: { enabled: true, threshold: 0.5 } } })
    const r = await h.send({ text: b, policy: { semantic: { enabled: true, threshold: 0.5 } } })
    expect(header(r.ctx)).toBe('miss')
    expect(h.calls).toHaveLength(2)
  })

  it('lets a team turn the meaning-flip guard off (the threshold alone decides)', async () => {
    const h = harness()
    const loose = (guard?: boolean) => ({ semantic: { enabled: true, threshold: 0.5, ...(guard === undefined ? {} : { guard }) } })
    const readOnly = { 'cache-control': 'no-store' }
    const first = await h.send({ text: 'How do I enable two-factor authentication on my account?', policy: loose() })
    const flipped = 'How do I disable two-factor authentication on my account?'
    expect(header((await h.send({ text: flipped, policy: loose(), headers: readOnly })).ctx)).toBe('miss')
    expect(header((await h.send({ text: flipped, policy: loose(true), headers: readOnly })).ctx)).toBe('miss')
    const off = await h.send({ text: flipped, policy: loose(false), headers: readOnly })
    expect(header(off.ctx)).toBe('semantic-hit')
    expect(off.body.content).toBe(first.body.content)
  })

  it('checks at most max_candidates neighbours', async () => {
    const policy = (max: number) => ({ exact: { enabled: false }, semantic: { enabled: true, threshold: 0.3, max_candidates: max } })
    const h = harness()
    // the nearest entry flips the meaning; a farther one asks the same thing
    await h.send({ text: 'Should I disable dark mode in the settings page?', policy: policy(5) })
    const same = await h.send({ text: 'could you tell me whether I should enable dark mode', policy: policy(5) })
    const asked = 'Should I enable dark mode in the settings page?'
    const readOnly = { 'cache-control': 'no-store' }
    expect(header((await h.send({ text: asked, policy: policy(1), headers: readOnly })).ctx)).toBe('miss')
    const r = await h.send({ text: asked, policy: policy(5), headers: readOnly })
    expect(header(r.ctx)).toBe('semantic-hit')
    expect(r.body.content).toBe(same.body.content)
  })

  it('never hits across teams, system prompts or parameters', async () => {
    const h = harness()
    await h.send({ text: 'How do I reset my password?', system: 'You are support for Acme.' })
    expect(header((await h.send({ team: 'b', text: 'how do I reset my password', system: 'You are support for Acme.' })).ctx)).toBe('miss')
    expect(header((await h.send({ text: 'how do I reset my password', system: 'You are support for Globex.' })).ctx)).toBe('miss')
    expect(header((await h.send({ text: 'how do I reset my password', system: 'You are support for Acme.', request: { temperature: 0, max_tokens: 5 } })).ctx)).toBe('miss')
    expect(header((await h.send({ text: 'how do I reset my password', system: 'You are support for Acme.' })).ctx)).toBe('semantic-hit')
  })

  it('counts hits, misses, bypasses, savings and lookup latency in prom-client', async () => {
    const h = harness()
    await h.send({})
    await h.send({})
    await h.send({ text: 'what is the capital of france' })
    await h.send({ headers: { 'x-sluice-cache': 'off' } })
    const text = await h.registry.metrics()
    expect(text).toContain('sluice_cache_requests_total{layer="exact",result="miss",team="a"} 2')
    expect(text).toContain('sluice_cache_requests_total{layer="exact",result="hit",team="a"} 1')
    expect(text).toContain('sluice_cache_requests_total{layer="semantic",result="hit",team="a"} 1')
    expect(text).toContain('sluice_cache_requests_total{layer="exact",result="bypass",team="a"} 1')
    expect(text).toContain(`sluice_cache_saved_usd_total{layer="exact",team="a"} ${COST}`)
    expect(text).toContain('sluice_cache_saved_tokens_total{layer="semantic",team="a"} 42')
    expect(text).toMatch(/sluice_cache_semantic_lookup_seconds_count \d/)
    expect(text).toContain('sluice_cache_semantic_index_entries 1')
    expect(text).toContain('sluice_cache_requests_total{layer="provider",result="miss",team="a"}')
  })
})
