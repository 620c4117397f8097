import type { GatewayConfig } from '../config/load.js'
import { providerSchema } from '../config/schema.js'
import { createLlamaProvider, type LlamaProviderConfig } from '../providers/llama/index.js'
import type { Provider } from '../providers/types.js'
import type { Target } from '../routing/types.js'
import { createBuiltinEmbedder, createProviderEmbedder } from '../vector/embedders.js'
import { createMemoryIndex } from '../vector/memory.js'
import type { Embedder, VectorIndex } from '../vector/types.js'
import { semanticCacheConfigSchema, type SemanticCacheConfig } from './schema.js'
import { createSemanticCache, type SemanticCache } from './semantic.js'

/**
 * The gateway's semantic cache engine (embedder + vector index), built once and kept across config reloads:
 * the index is the cache, so a reload that leaves `semantic_cache:` unchanged keeps every entry.
 */
export interface SemanticEngine {
  /** The engine in service, or undefined while none is configured (or it failed to start). */
  current(): SemanticCache | undefined
  /**
   * Build the engine a config asks for, unless the running one already matches. Never throws: a failure is
   * logged and leaves the previous engine (none at start: semantic caching is then off).
   */
  configure(config: GatewayConfig): Promise<void>
  close(): Promise<void>
}

export interface SemanticEngineDeps {
  /** The gateway's current providers and targets, read at call time (they are rebuilt on reloads). */
  providers: () => Map<string, Provider>
  targets: () => Map<string, Target>
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void
}

/** True when the config has a `semantic_cache:` block or some team turns the semantic layer on. */
export function semanticCacheWanted(config: Pick<GatewayConfig, 'policies'> & { semantic_cache?: unknown }): boolean {
  if (config.semantic_cache !== undefined) return true
  return Object.values(config.policies).some((p) => p.cache !== undefined && p.cache.enabled && p.cache.semantic.enabled)
}

/**
 * The semantic cache engine of one gateway. `configure` builds the embedder, probes its dimension with one
 * embedding, builds the index at that dimension and runs `index.init()` (Qdrant: creates the collection).
 *
 * @example
 * const engine = createSemanticEngine({ providers: () => rt.providers, targets: () => rt.targets, log })
 * await engine.configure(config)
 * createCacheStep({ store, semantic: engine.current })
 */
export function createSemanticEngine(deps: SemanticEngineDeps): SemanticEngine {
  const log = deps.log ?? (() => {})
  let running: { key: string; cache: SemanticCache; owned?: Provider } | undefined
  let queue: Promise<void> = Promise.resolve()

  const embedderFor = (cfg: SemanticCacheConfig['embedder']): { embedder: Embedder; owned?: Provider } => {
    if (cfg.kind === 'builtin') return { embedder: createBuiltinEmbedder({ dimensions: cfg.dimensions }) }
    if (cfg.kind === 'upstream') {
      return {
        embedder: createProviderEmbedder({
          kind: 'upstream',
          resolve: () => {
            const target = deps.targets().get(cfg.model)
            if (!target || target.model.type !== 'embedding') throw new Error(`semantic_cache.embedder.model "${cfg.model}" is not an embedding model in models:`)
            return { provider: target.provider, model: target.model.model }
          }
        })
      }
    }
    if (cfg.model_path) {
      // the gateway loads this model itself, for the cache only
      const config = providerSchema.parse({ kind: 'llama', model_path: cfg.model_path, embedding: true, load: 'start' }) as LlamaProviderConfig
      const provider = createLlamaProvider('semantic-cache-embedder', config)
      return { embedder: createProviderEmbedder({ kind: 'llama', resolve: () => ({ provider, model: cfg.model_path! }) }), owned: provider }
    }
    const name = cfg.provider
    if (!name) throw new Error('semantic_cache.embedder (kind: llama) needs provider or model_path')
    return {
      embedder: createProviderEmbedder({
        kind: 'llama',
        resolve: () => {
          const provider = deps.providers().get(name)
          if (!provider) throw new Error(`semantic_cache.embedder.provider "${name}" is not in providers:`)
          return { provider, model: name }
        }
      })
    }
  }

  const indexFor = async (cfg: SemanticCacheConfig['index'], dimensions: number): Promise<VectorIndex> => {
    if (cfg.kind === 'memory') return createMemoryIndex({ dimensions, maxEntries: cfg.max_entries, ...cfg.lsh })
    // loaded only when configured: the Qdrant client is about 9 MB of RSS
    const { createQdrantIndex } = await import('../vector/qdrant.js')
    return createQdrantIndex({ url: cfg.url, apiKey: cfg.api_key, collection: cfg.collection, dimensions, timeoutMs: cfg.timeout_ms, pruneEvery: cfg.prune_every })
  }

  const build = async (config: GatewayConfig): Promise<void> => {
    if (!semanticCacheWanted(config)) return
    const block = semanticCacheConfigSchema.parse((config as { semantic_cache?: unknown }).semantic_cache ?? {})
    const key = JSON.stringify(block)
    if (running?.key === key) return
    let owned: Provider | undefined
    try {
      const made = embedderFor(block.embedder)
      owned = made.owned
      // one embedding tells the dimension (model embedders do not know it up front) and proves the embedder works
      const [probe] = await made.embedder.embed(['sluice semantic cache dimension probe'])
      if (!probe?.length) throw new Error('the embedder returned an empty vector')
      const index = await indexFor(block.index, probe.length)
      await index.init()
      const previous = running
      running = { key, cache: createSemanticCache({ embedder: made.embedder, index }), owned }
      log('info', `semantic cache: ${block.embedder.kind} embedder (${probe.length} dimensions), ${block.index.kind} index (${index.settings})`)
      if (previous) await closeEngine(previous)
    } catch (err) {
      await owned?.close().catch(() => {})
      log('error', `semantic cache ${running ? 'kept its previous engine' : 'disabled'}: ${(err as Error).message}`)
    }
  }

  return {
    current: () => running?.cache,
    configure(config) {
      // reloads may overlap: build one engine at a time, in order
      queue = queue.then(() => build(config))
      return queue
    },
    async close() {
      await queue
      if (running) await closeEngine(running)
      running = undefined
    }
  }
}

async function closeEngine(e: { cache: SemanticCache; owned?: Provider }): Promise<void> {
  await Promise.allSettled([e.cache.index.close(), e.owned?.close()])
}
