import type { Registry } from 'prom-client'
import { admissionGate, type Attempt, type PipelineResult, type RequestContext, type Step } from '../context.js'
import type { Price } from '../config/schema.js'
import { ledgerAtEnd } from '../ledger/at-end.js'
import { ledgerEntryFor } from '../ledger/entry.js'
import type { LedgerEntry } from '../ledger/types.js'
import { createLru } from '../lru.js'
import type { Store } from '../store/types.js'
import { observeStream } from '../stream.js'
import { atTurnEnd, turnBusy, turnEnd } from '../turn.js'
import type { ChatCompletion } from '../types.js'
import { cacheIntent, exactCacheKey, semanticQuery, tenantScope, type SemanticQuery } from './key.js'
import { createCacheMetrics, type CacheMetrics } from './metrics.js'
import { providerCacheSavings } from './prompt-caching.js'
import { completionToChunks, createChunkAssembler } from './replay.js'
import { resolveCachePolicy, type CachePolicy } from './schema.js'
import { semanticEntryKey, type SemanticCache } from './semantic.js'

/** Characters of stored entries whose parse is kept for repeated hits (with the parsed objects, a few MB at most). */
const PARSED_CHARS = 1 << 20

/** An answer serialised for the store: the exact layer's entry and the semantic layer's (one string when their TTLs agree). */
interface StoredAnswer {
  exact: string
  semantic: string
  /** How long the semantic layer keeps it (its own `ttl_s`, else the policy's). */
  semanticTtlS: number
  createdAt: number
}

/** What the cache keeps per answer. */
export interface CachedAnswer {
  v: 1
  completion: ChatCompletion
  /** What the call that produced it cost: a hit saves this much. */
  costUsd: number
  /** Epoch milliseconds. */
  createdAt: number
  expiresAt: number
}

export interface CacheStepDeps {
  store: Store
  /** prom-client registry for the cache metrics; none recorded without one. */
  registry?: Registry
  /**
   * The semantic layer (gateway-wide engine; teams opt in with `cache.semantic.enabled`). A function is read
   * on every request: the gateway's engine may start, or be rebuilt, after the step was made.
   */
  semantic?: SemanticCache | (() => SemanticCache | undefined)
  /** Writes one `cache_hit` ledger entry per hit when given. */
  ledger?: { record(entry: LedgerEntry): void }
  /** Price of an attempt's model, for the provider layer's saved USD. */
  priceFor?: (attempt: Attempt) => Price | undefined
  /**
   * What the request's alias resolves to (`routeFingerprint`), added to every key so a reload that reroutes
   * the alias does not serve the old target's answers. Called per request: memoise it (see `cacheStep`).
   */
  routeOf?: (ctx: RequestContext) => string | undefined
  /** Cache failures never fail a request; they are reported here. */
  onError?: (err: unknown, where: string) => void
  /** Epoch milliseconds (tests). */
  now?: () => number
}

/**
 * The cache step of the pipeline (look up before `next`, remember after it).
 *
 * - reads the exact cache, then the semantic cache; a hit returns the stored answer (a replayed stream for
 *   stream requests), costs $0 and sets `ctx.savedUsd` to the cost of the original call;
 * - on a miss calls `next()` and stores the final answer in the background (the response never waits for
 *   the write): for JSON once the upstream answered, for streams when the stream ends successfully,
 *   assembled from the chunks while they pass through untouched;
 * - sets `ctx.cache` and the `x-sluice-cache` (and `x-sluice-cache-similarity`) response headers;
 * - counts `sluice_cache_*` metrics, the provider layer included (prompt-cache reads seen in usage).
 *
 * Store or index failures degrade to a miss; they never fail the request.
 *
 * @example
 * const cache = createCacheStep({ store, registry, semantic })
 * const run = createPipeline([guardInput, admit, cache, guardOutput, route])
 */
export function createCacheStep(deps: CacheStepDeps): Step {
  const now = deps.now ?? Date.now
  const onError = deps.onError ?? (() => {})
  const semanticOf = typeof deps.semantic === 'function' ? deps.semantic : () => deps.semantic as SemanticCache | undefined
  const metrics: CacheMetrics | undefined = deps.registry
    ? createCacheMetrics(deps.registry, deps.semantic ? async () => (await semanticOf()?.index.size()) ?? 0 : undefined)
    : undefined

  /**
   * Writes run after the response is returned (a Redis write or an embed + upsert must not add to a miss's
   * latency). Until one lands, reads of its key, or lookups in its semantic scope, on this instance wait
   * for it: an immediate re-ask still hits. Other instances may miss during that window.
   */
  const pendingKeys = new Map<string, Promise<void>>()
  const pendingScopes = new Map<string, Promise<void>>()
  const track = (map: Map<string, Promise<void>>, k: string, write: Promise<void>): void => {
    const prev = map.get(k)
    const all = prev ? Promise.all([prev, write]).then(() => {}) : write
    map.set(k, all)
    void all.then(() => {
      if (map.get(k) === all) map.delete(k)
    })
  }
  function writeInBackground(key: string, scope: string | undefined, work: () => Promise<void>): void {
    // at the turn's end (src/turn.ts): the answer is written first, and the turn's writes run together
    const write = new Promise<void>((resolve) => atTurnEnd(() => resolve(work()))).catch((err: unknown) => onError(err, 'cache write'))
    track(pendingKeys, key, write)
    if (scope !== undefined) track(pendingScopes, scope, write)
  }

  /**
   * The entries hits parsed last, each with the stored text it was parsed from: a key asked again and again (what
   * a hit is) reuses the parse while the store still holds the same text. Shared between requests, so never
   * changed: `serve` copies what a request may change.
   */
  const parsed = createLru<string, { raw: string; entry: CachedAnswer }>({ max: PARSED_CHARS, weigh: (key, v) => key.length + v.raw.length })

  async function read(key: string): Promise<CachedAnswer | undefined> {
    const pending = pendingKeys.get(key)
    if (pending) await pending
    try {
      const raw = await deps.store.cacheGet(key)
      if (!raw) return undefined
      const seen = parsed.get(key)
      let entry: CachedAnswer
      if (seen && seen.raw === raw) entry = seen.entry
      else {
        entry = JSON.parse(raw) as CachedAnswer
        parsed.set(key, { raw, entry })
      }
      // The store's own TTL may be coarser (or absent in tests): the entry's deadline is the truth.
      return entry.v === 1 && entry.expiresAt > now() ? entry : undefined
    } catch (err) {
      onError(err, 'cache read')
      return undefined
    }
  }

  function serve(ctx: RequestContext, entry: CachedAnswer, layer: 'exact' | 'semantic', similarity?: number): PipelineResult {
    const team = ctx.principal.team
    ctx.cache = layer === 'exact' ? 'hit' : 'semantic-hit'
    ctx.savedUsd = entry.costUsd
    ctx.responseHeaders['x-sluice-cache'] = ctx.cache
    if (similarity !== undefined) ctx.responseHeaders['x-sluice-cache-similarity'] = similarity.toFixed(4)
    const usage = entry.completion.usage
    metrics?.request(layer, 'hit', team)
    metrics?.saved(layer, team, usage?.total_tokens ?? 0, entry.costUsd)
    // written when the request ends: the output guard acts on the cached answer after this
    if (deps.ledger) ledgerAtEnd(ctx, deps.ledger)(hitEntry(ctx, entry))
    // the entry is shared with other hits (see `parsed`): the output guard rewrites each choice's message
    // (content, tool_calls) on the answer it is given, so those are this request's own copies
    const choices = entry.completion.choices.map((choice) => ({ ...choice, message: { ...choice.message } }))
    const completion: ChatCompletion = { ...entry.completion, choices, id: `chatcmpl-${ctx.id}`, created: Math.floor(now() / 1000) }
    // a stream's usage chunk carries what the request cost: nothing, for a hit
    if (ctx.stream && completion.usage) completion.usage = { ...completion.usage, sluice_cost_usd: 0 }
    if (ctx.stream) return { type: 'stream', stream: completionToChunks(completion, { includeUsage: ctx.wantsUsage }) }
    return { type: 'json', body: completion }
  }

  /**
   * What to store for an answer, serialised now rather than with the deferred write: the answer goes on to the
   * client, and the output guard rewrites its messages in place for that caller once this step has returned.
   * Undefined when the entry is larger than the policy keeps.
   */
  function entryFor(ctx: RequestContext, policy: CachePolicy, completion: ChatCompletion, semantic: boolean): StoredAnswer | undefined {
    const createdAt = now()
    if (completion.usage && 'sluice_cost_usd' in completion.usage) {
      // the cost of the call that produced it is kept as costUsd; a replay must not repeat it as its own
      const { sluice_cost_usd: _cost, ...usage } = completion.usage
      completion = { ...completion, usage: usage as ChatCompletion['usage'] }
    }
    const cost = ctx.attempts.reduce((sum, a) => sum + a.costUsd, 0)
    const entry = (ttlS: number): string =>
      JSON.stringify({ v: 1, completion, costUsd: Math.max(ctx.costUsd, cost), createdAt, expiresAt: createdAt + ttlS * 1000 } satisfies CachedAnswer)
    const exact = entry(policy.ttl_s)
    if (Buffer.byteLength(exact) > policy.max_entry_bytes) return undefined
    const semanticTtlS = policy.semantic.ttl_s ?? policy.ttl_s
    // the same serialised entry when both layers keep it as long (the usual case)
    return { exact, semantic: !semantic || semanticTtlS === policy.ttl_s ? exact : entry(semanticTtlS), semanticTtlS, createdAt }
  }

  async function remember(
    policy: CachePolicy,
    key: string,
    stored: StoredAnswer,
    sem: { query: SemanticQuery; vector: Float32Array; cache: SemanticCache } | undefined
  ): Promise<void> {
    // both layers' writes start now: on Redis the semantic entry goes out in the exact entry's write (the turn's),
    // not in a write of its own after that one's reply
    const exact = policy.exact.enabled ? deps.store.cacheSet(key, stored.exact, policy.ttl_s * 1000) : undefined
    try {
      if (sem) {
        const id = await sem.cache.remember(sem.query, sem.vector, stored.createdAt + stored.semanticTtlS * 1000)
        await deps.store.cacheSet(semanticEntryKey(id), stored.semantic, stored.semanticTtlS * 1000)
      }
    } catch (err) {
      onError(err, 'cache write')
    }
    try {
      await exact
    } catch (err) {
      onError(err, 'cache write')
    }
  }

  /** Provider-layer metrics from the attempts' usage: a read of the provider's prompt cache is a hit. */
  function observeProvider(ctx: RequestContext): void {
    if (!metrics) return
    const team = ctx.principal.team
    for (const a of ctx.attempts) {
      if (a.status !== 'ok' || !a.usage || a.estimated) continue
      const s = providerCacheSavings(a.usage, deps.priceFor?.(a))
      metrics.request('provider', s.cachedTokens > 0 ? 'hit' : 'miss', team)
      metrics.saved('provider', team, s.cachedTokens, s.netSavedUsd)
    }
  }

  const observeOnDone = (c: RequestContext, error?: unknown): void => {
    if (!error && c.cache !== 'hit' && c.cache !== 'semantic-hit') observeProvider(c)
  }

  return async function cacheStep(ctx, next) {
    if (ctx.surface === 'embeddings') return next()
    // provider prompt caching works without a `cache:` section: only its metrics are kept then
    if (metrics) ctx.onDone.push(observeOnDone)
    if (!ctx.policy.cache) {
      ctx.cache = 'bypass'
      ctx.responseHeaders['x-sluice-cache'] = 'bypass'
      return next()
    }
    const policy = resolveCachePolicy(ctx.policy.cache)
    const team = ctx.principal.team
    const intent = cacheIntent(ctx, policy)
    const semantic = policy.semantic.enabled ? semanticOf() : undefined
    const semanticOn = semantic !== undefined

    if (!intent.read && !intent.write) {
      ctx.cache = 'bypass'
      ctx.responseHeaders['x-sluice-cache'] = 'bypass'
      if (policy.exact.enabled && policy.enabled) metrics?.request('exact', 'bypass', team)
      if (semanticOn && policy.enabled) metrics?.request('semantic', 'bypass', team)
      return next()
    }

    const tenant = tenantScope(team, policy.scope)
    const route = deps.routeOf?.(ctx)
    const key = exactCacheKey({ tenant, alias: ctx.alias, route, request: ctx.request, inProcess: deps.store.kind === 'memory' })
    // an admission check sent ahead (the early rate limit) answers with the exact read's reply: a refused request is
    // never served, nor looked up further
    const gate = admissionGate(ctx)
    if (intent.read && policy.exact.enabled) {
      const hit = await read(key)
      if (gate) await gate
      if (hit) return serve(ctx, hit, 'exact')
      metrics?.request('exact', 'miss', team)
    }
    // after the exact read: an exact hit never needs the semantic scope (canonical JSON of the context, hashed for a shared index)
    let sem: { query: SemanticQuery; vector?: Float32Array } | undefined
    if (semanticOn) {
      const query = semanticQuery({ tenant, alias: ctx.alias, route, request: ctx.request, inProcess: semantic!.index.kind === 'memory' })
      if (query && query.text.length <= policy.semantic.max_query_chars) sem = { query }
    }

    if (intent.read) {
      if (sem) {
        if (gate) await gate
        const started = performance.now()
        try {
          // in a busy turn the lookups run together at its end, after its writes; in an idle one at once (src/turn.ts)
          if (turnBusy()) await turnEnd()
          const pending = pendingScopes.get(sem.query.scope)
          if (pending) await pending
          const threshold = policy.semantic.threshold ?? semantic!.embedder.defaultThreshold
          const found = await semantic!.lookup(sem.query, {
            threshold,
            now: now(),
            // the builtin embedder runs in this process and cannot be stopped: no AbortSignal is made for it
            signal: semantic!.embedder.kind === 'builtin' ? undefined : ctx.signal,
            limit: policy.semantic.max_candidates,
            guard: policy.semantic.guard
          })
          sem.vector = found.vector
          for (const c of found.candidates) {
            const hit = await read(semanticEntryKey(c.id))
            if (hit) {
              metrics?.semanticLookup((performance.now() - started) / 1000)
              return serve(ctx, hit, 'semantic', c.similarity)
            }
          }
        } catch (err) {
          onError(err, 'semantic lookup')
        }
        metrics?.semanticLookup((performance.now() - started) / 1000)
        metrics?.request('semantic', 'miss', team)
      } else if (semanticOn) {
        metrics?.request('semantic', 'bypass', team)
      }
    } else {
      if (policy.exact.enabled) metrics?.request('exact', 'bypass', team)
      if (semanticOn) metrics?.request('semantic', 'bypass', team)
    }

    ctx.cache = intent.read ? 'miss' : 'bypass'
    ctx.responseHeaders['x-sluice-cache'] = ctx.cache
    const alias = ctx.alias
    const result = await next()
    // a budget downgrade after the lookup moved the request: its answer is not the asked model's
    if (!intent.write || ctx.alias !== alias) return result

    const semToStore = async (): Promise<{ query: SemanticQuery; vector: Float32Array; cache: SemanticCache } | undefined> => {
      if (!sem || !semantic) return undefined
      if (sem.vector) return { query: sem.query, vector: sem.vector, cache: semantic }
      try {
        const [vector] = await semantic.embedder.embed([sem.query.text])
        return { query: sem.query, vector: vector!, cache: semantic }
      } catch (err) {
        onError(err, 'semantic embed')
        return undefined
      }
    }

    /** Serialises a finished answer now; both layers store it at the turn's end. */
    const rememberLater = (completion: ChatCompletion | undefined): void => {
      const stored = completion && cacheable(completion) ? entryFor(ctx, policy, completion, sem !== undefined) : undefined
      if (stored) writeInBackground(key, sem?.query.scope, async () => remember(policy, key, stored, await semToStore()))
    }

    if (result.type === 'json') {
      rememberLater(result.body)
      return result
    }
    // Chunks pass straight through; the copy kept for the cache is assembled alongside.
    const assembler = createChunkAssembler()
    return {
      type: 'stream',
      stream: observeStream(result.stream, {
        map: (chunk) => {
          assembler.add(chunk)
          return chunk
        },
        onEnd: ({ error, closedEarly }) => {
          if (error || closedEarly || ctx.abort.aborted) return
          // the stream ends for the client now; the write follows
          rememberLater(assembler.result())
        }
      })
    }
  }
}

/** Only finished answers are worth replaying. */
function cacheable(c: ChatCompletion): boolean {
  return c.choices.length > 0 && c.choices.every((ch) => ch.finish_reason !== null && ch.finish_reason !== 'error')
}

function hitEntry(ctx: RequestContext, entry: CachedAnswer): LedgerEntry {
  return ledgerEntryFor(ctx, {
    model: 'cache',
    provider: 'cache',
    stream: ctx.stream,
    status: 'cache_hit',
    tokens: { input: 0, output: 0, cached_input: 0, cache_write: 0 },
    estimated: false,
    cost_usd: 0,
    saved_usd: entry.costUsd,
    cache: ctx.cache,
    latency_ms: Math.round(performance.now() - ctx.startedAt),
    attempt: 0
  })
}
