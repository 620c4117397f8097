import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { semanticCacheWanted } from '../src/cache/engine.js'
import { semanticCacheConfigSchema } from '../src/cache/schema.js'
import { teamPolicySchema } from '../src/config/schema.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { startFakeQdrant } from './fakes/qdrant.js'
import { writeTinyLlamaGguf } from './gguf/tinyLlama.js'
import { TEAM_A_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'

// exact layer off, so a repeated question can only be answered by the semantic layer
const semanticOnly = { a: { cache: { exact: { enabled: false }, semantic: { enabled: true } } } }

let fake: FakeOpenAI
beforeAll(async () => {
  fake = await startFakeOpenAI()
})
afterAll(async () => {
  await fake.close()
})

async function ask(gw: TestGateway, content: string) {
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 })
  const { response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] }).withResponse()
  return response.headers.get('x-sluice-cache')
}

const embeddingCalls = () => fake.requests.filter((r) => r.path.endsWith('/embeddings'))

describe('semantic cache engine', () => {
  it('is wanted only when a team turns the layer on or the gateway config has semantic_cache:', () => {
    const policies = (p: unknown) => ({ a: teamPolicySchema.parse(p) })
    expect(semanticCacheWanted({ policies: policies({}) })).toBe(false)
    expect(semanticCacheWanted({ policies: policies({ cache: {} }) })).toBe(false)
    expect(semanticCacheWanted({ policies: policies({ cache: { enabled: false, semantic: { enabled: true } } }) })).toBe(false)
    expect(semanticCacheWanted({ policies: policies({ cache: { semantic: { enabled: true } } }) })).toBe(true)
    expect(semanticCacheWanted({ policies: policies({}), semantic_cache: {} })).toBe(true)
  })

  it('is not built for a gateway that does not use it', async () => {
    const gw = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, policies: { a: { cache: {} } } })
    try {
      expect(gw.gateway.runtime.semanticCache!.current()).toBeUndefined()
    } finally {
      await gw.close(0)
    }
  })

  it('uses an upstream embeddings model from models:, probed at start, resolved from the current providers after a reload', async () => {
    const logs: string[] = []
    const gw = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      policies: semanticOnly,
      config: { semantic_cache: { embedder: { kind: 'upstream', model: 'text-embedding-3-small' } } },
      server: { log: (_level, msg) => logs.push(msg) }
    })
    try {
      const engine = gw.gateway.runtime.semanticCache!.current()!
      expect(engine.embedder.kind).toBe('upstream')
      expect(engine.embedder.dimensions).toBe(8) // the fake's vectors, learnt from the start-up probe
      expect(logs.some((l) => /semantic cache: upstream embedder \(8 dimensions\), memory index/.test(l))).toBe(true)
      const probes = embeddingCalls().length
      expect(probes).toBeGreaterThan(0)

      expect(await ask(gw, 'What is the status of the billing migration?')).toBe('miss')
      expect(await ask(gw, 'What is the status of the billing migration?')).toBe('semantic-hit')
      expect(embeddingCalls().length).toBeGreaterThan(probes)

      // a reload with a changed provider: same engine (entries kept), embeddings through the new provider
      const providers = { ...gw.config.providers, openai: { ...gw.config.providers.openai!, headers: { 'x-reload': 'two' } } }
      gw.gateway.reload({ ...gw.config, providers })
      expect(gw.gateway.runtime.semanticCache!.current()).toBe(engine)
      expect(await ask(gw, 'What is the status of the billing migration?')).toBe('semantic-hit')
      expect(embeddingCalls().at(-1)!.headers['x-reload']).toBe('two')
    } finally {
      await gw.close(0)
    }
  })

  it('rebuilds when semantic_cache: changes on reload, and keeps the running engine when the new one fails', async () => {
    const logs: string[] = []
    const gw = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, policies: semanticOnly, server: { log: (_l, msg) => logs.push(msg) } })
    try {
      const builtin = gw.gateway.runtime.semanticCache!.current()!
      expect(builtin.embedder.kind).toBe('builtin')
      expect(builtin.embedder.dimensions).toBe(256)
      expect(await ask(gw, 'Where is the deploy checklist kept?')).toBe('miss')
      expect(await ask(gw, 'where is the deploy checklist kept')).toBe('semantic-hit')

      // unchanged config: same engine, same entries
      gw.gateway.reload(gw.config)
      await gw.gateway.runtime.semanticCache!.configure(gw.config)
      expect(gw.gateway.runtime.semanticCache!.current()).toBe(builtin)

      // an embedder that cannot work: logged, the running engine stays
      await gw.gateway.runtime.semanticCache!.configure({ ...gw.config, semantic_cache: { embedder: { kind: 'upstream', model: 'gpt-4o-mini' }, index: { kind: 'memory', max_entries: 10 } } } as never)
      expect(gw.gateway.runtime.semanticCache!.current()).toBe(builtin)
      expect(logs.some((l) => /semantic cache kept its previous engine: .*not an embedding model/.test(l))).toBe(true)

      // a different block: a new engine (a new, empty index)
      await gw.gateway.runtime.semanticCache!.configure({ ...gw.config, semantic_cache: { embedder: { kind: 'builtin', dimensions: 128 }, index: { kind: 'memory', max_entries: 10 } } } as never)
      const next = gw.gateway.runtime.semanticCache!.current()!
      expect(next).not.toBe(builtin)
      expect(next.embedder.dimensions).toBe(128)
      expect(await ask(gw, 'where is the deploy checklist kept')).toBe('miss')
    } finally {
      await gw.close(0)
    }
  })

  it('starts with semantic caching disabled, not crashed, when the embedder fails its probe', async () => {
    const logs: string[] = []
    const gw = await startTestGateway({
      openaiUrl: 'http://127.0.0.1:9/v1', // nothing listens there
      openaiKey: 'sk-none',
      policies: semanticOnly,
      config: { semantic_cache: { embedder: { kind: 'upstream', model: 'text-embedding-3-small' } } },
      server: { log: (level, msg) => logs.push(`${level}: ${msg}`) }
    })
    try {
      expect(gw.gateway.runtime.semanticCache!.current()).toBeUndefined()
      expect(logs.some((l) => l.startsWith('error: semantic cache disabled:'))).toBe(true)
      const res = await fetch(`${gw.url}/readyz`)
      expect(res.status).toBe(200)
    } finally {
      await gw.close(0)
    }
  })
})

describe('semantic cache engine: qdrant index settings', () => {
  it('passes max_entries and the LSH settings through to the memory index (defaults 16 × 18 bits, 8 probes)', async () => {
    expect(semanticCacheConfigSchema.parse({}).index).toEqual({ kind: 'memory', max_entries: 25_000, lsh: { tables: 16, bits: 18, probes: 8 } })
    const bad = semanticCacheConfigSchema.safeParse({ index: { kind: 'memory', lsh: { bits: 31, probe: 2 } } })
    expect(bad.success).toBe(false)
    const issues = bad.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n')
    expect(issues).toMatch(/index\.lsh\.bits: .*30/)
    expect(issues).toMatch(/index\.lsh: .*probe/)

    const logs: string[] = []
    const gw = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      policies: semanticOnly,
      config: { semantic_cache: { index: { kind: 'memory', max_entries: 500, lsh: { tables: 4, bits: 12, probes: 2 } } } },
      server: { log: (_level, msg) => logs.push(msg) }
    })
    try {
      // the index describes itself from the options it was built with
      expect(gw.gateway.runtime.semanticCache!.current()!.index.settings).toBe('up to 500 entries; scopes past 1024 through LSH: 4 tables × 12 bits, 2 probes')
      expect(logs.some((l) => l.includes('memory index (up to 500 entries; scopes past 1024 through LSH: 4 tables × 12 bits, 2 probes)'))).toBe(true)
      expect(await ask(gw, 'Where do the lsh knobs live?')).toBe('miss')
      expect(await ask(gw, 'where do the lsh knobs live')).toBe('semantic-hit')
    } finally {
      await gw.close(0)
    }
  })

  it('passes collection, prune_every and timeout_ms through to the Qdrant index', async () => {
    const qdrant = await startFakeQdrant()
    const gw = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      policies: semanticOnly,
      config: { semantic_cache: { index: { kind: 'qdrant', url: qdrant.url, collection: 'knobs', prune_every: 2, timeout_ms: 2000 } } }
    })
    try {
      expect(gw.gateway.runtime.semanticCache!.current()!.index.kind).toBe('qdrant')
      expect(qdrant.collections.get('knobs')?.size).toBe(256)
      expect(await ask(gw, 'Where do the qdrant knobs live?')).toBe('miss')
      expect(await ask(gw, 'where do the qdrant knobs live')).toBe('semantic-hit')
      expect(await ask(gw, 'Which port does the staging database use?')).toBe('miss')
      // two upserts: prune_every: 2 deletes expired points once
      await expect.poll(() => qdrant.requests.filter((r) => r.path === '/collections/knobs/points/delete').length).toBe(1)
    } finally {
      await gw.close(0)
      await qdrant.close()
    }
  })

  it('gives up on a Qdrant that does not answer after timeout_ms, and starts without the semantic layer', async () => {
    const silent = createServer(() => {})
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    const logs: string[] = []
    const started = performance.now()
    const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`
    const gw = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      policies: semanticOnly,
      config: { semantic_cache: { index: { kind: 'qdrant', url, timeout_ms: 300 } } },
      server: { log: (level, msg) => logs.push(`${level}: ${msg}`) }
    })
    try {
      expect(performance.now() - started).toBeLessThan(4000)
      expect(gw.gateway.runtime.semanticCache!.current()).toBeUndefined()
      expect(logs.some((l) => /^error: semantic cache disabled: .*(timeout|abort)/i.test(l))).toBe(true)
    } finally {
      await gw.close(0)
      silent.closeAllConnections()
      silent.close()
    }
  })
})

describe('semantic cache engine: llama embedder', () => {
  let dir: string
  let model: { path: string; embd: number }
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-cache-llama-'))
    // mean pooling: the embedding context pools over the sequence, as a real embedding model does
    model = await writeTinyLlamaGguf(join(dir, 'embed.gguf'), { seed: 11, pooling: 'mean' })
  }, 60_000)
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true })
  })

  it('rejects kind: llama without provider or model_path at load, naming the fix', async () => {
    const r = semanticCacheConfigSchema.safeParse({ embedder: { kind: 'llama' } })
    expect(r.success).toBe(false)
    expect(r.error!.issues[0]!.path).toEqual(['embedder'])
    expect(r.error!.issues[0]!.message).toMatch(/provider .*embedding: true.* or model_path/)
    expect(semanticCacheConfigSchema.safeParse({ embedder: { kind: 'llama', provider: 'p', model_path: 'm.gguf' } }).success).toBe(false)
    await expect(
      startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, policies: semanticOnly, config: { semantic_cache: { embedder: { kind: 'llama' } } } })
    ).rejects.toThrow(/at semantic_cache\.embedder: kind: llama needs exactly one of provider .* or model_path/)
  })

  it('embeds with a llama provider of providers: (embedding: true), and with a GGUF model_path of its own', async () => {
    const logs: string[] = []
    const local = { kind: 'llama', model_path: model.path, embedding: true, load: 'start', context_size: 256, concurrency: 1, threads: 1 }
    const gw = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      policies: semanticOnly,
      config: {
        providers: { openai: { kind: 'openai', base_url: fake.url, api_key: fake.apiKey }, anthropic: { kind: 'anthropic', base_url: 'http://127.0.0.1:9', api_key: 'sk-none' }, local },
        semantic_cache: { embedder: { kind: 'llama', provider: 'local' } }
      },
      server: { log: (level, msg) => logs.push(`${level}: ${msg}`) }
    })
    try {
      const engine = gw.gateway.runtime.semanticCache!.current()
      expect(engine, logs.join('\n')).toBeDefined()
      expect(engine!.embedder.kind).toBe('llama')
      expect(engine!.embedder.dimensions).toBe(model.embd)
      expect(engine!.embedder.defaultThreshold).toBe(0.95)
      expect(logs.some((l) => l.includes(`semantic cache: llama embedder (${model.embd} dimensions), memory index`))).toBe(true)
      const chats = () => fake.requests.filter((r) => r.path.endsWith('/chat/completions')).length
      const before = chats()
      expect(await ask(gw, 'hello world, how is the cache budget?')).toBe('miss')
      expect(await ask(gw, 'hello world, how is the cache budget?')).toBe('semantic-hit')
      expect(chats()).toBe(before + 1)
      // the vectors come from the model: unit length, and not the same for every text
      const [v1, v2] = await engine!.embedder.embed(['hello world', 'the gateway said yes'])
      const dot = v1!.reduce((s, x, i) => s + x * v2![i]!, 0)
      expect(v1!.reduce((s, x) => s + x * x, 0)).toBeCloseTo(1, 4)
      expect(dot).toBeLessThan(0.9999)

      // a model_path of its own: the engine loads the GGUF itself (a new engine, a new index)
      await gw.gateway.runtime.semanticCache!.configure({ ...gw.config, semantic_cache: { embedder: { kind: 'llama', model_path: model.path }, index: { kind: 'memory', max_entries: 100 } } } as never)
      const own = gw.gateway.runtime.semanticCache!.current()!
      expect(own, logs.join('\n')).not.toBe(engine)
      expect(own.embedder.kind).toBe('llama')
      expect(own.embedder.dimensions).toBe(model.embd)
      expect(await ask(gw, 'what is the llama model token budget?')).toBe('miss')
      expect(await ask(gw, 'what is the llama model token budget?')).toBe('semantic-hit')
    } finally {
      await gw.close(0)
    }
  }, 120_000)
})
