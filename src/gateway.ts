import { createEventLog, type EventLog } from './audit.js'
import { createRequestAbort, type RequestAbortController } from './abort.js'
import { admissionFor, embeddingWorstCase, setRemainingHeader, type Admitted } from './budget/index.js'
import { createSemanticEngine, type SemanticEngine } from './cache/engine.js'
import type { GuardrailEvent } from './guardrails/record.js'
import { createContext, type Headers } from './auth/context.js'
import { createKeyring, hashKey, isAdminKey, presentedKey, type KeyRecord } from './auth/index.js'
import type { GatewayConfig } from './config/load.js'
import { afterOthers, type Attempt, type PipelineResult, type RequestContext, type Step } from './context.js'
import { GatewayError, UpstreamError } from './errors.js'
import { costOf, tokenCounts } from './ledger/cost.js'
import { ledgerEntryFor, ledgerModel } from './ledger/entry.js'
import { createLedger, type Ledger } from './ledger/index.js'
import { createMetrics, type Metrics } from './metrics/index.js'
import { createPipeline, finish } from './pipeline.js'
import { createTracing } from './otel/index.js'
import { createTargetCaller } from './providers/call.js'
import { createProviders } from './providers/index.js'
import type { Provider } from './providers/types.js'
import { validateClassifiers } from './guardrails/classifier.js'
import { createRouter, createRoutingMetrics, createRoutingState, isRouteAlias, routeAliases, validateRouting } from './routing/index.js'
import type { Target } from './routing/types.js'
import type { Store } from './store/types.js'
import type { ChatRequest, EmbeddingRequest, EmbeddingResponse, Principal } from './types.js'

/** What the steps of a pipeline are built from; rebuilt on every config reload. */
export interface Runtime {
  config: GatewayConfig
  providers: Map<string, Provider>
  targets: Map<string, Target>
  store: Store
  ledger: Ledger
  metrics: Metrics
  /** Recent guardrail actions (no matched text), kept across reloads. */
  guardrailEvents: EventLog<GuardrailEvent>
  /** The semantic cache engine, built once per gateway and kept across reloads (its index is the cache). */
  semanticCache?: SemanticEngine
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void
}

/** Builds the pipeline steps that sit before plan/call, in order. */
export type StepsFactory = (rt: Runtime) => Step[]

export interface GatewayOptions {
  store: Store
  /** Steps between identify and plan/call (guard input, admit, look up, guard output). */
  steps?: StepsFactory
  metrics?: Metrics
  log?: (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void
}

/**
 * The engine behind every HTTP surface: identify, then the pipeline, then settle. Surfaces translate their
 * wire format to the canonical request and call `chat`; they know nothing about budgets or caches.
 *
 * @example
 * const gateway = await createGateway(config, { store: createMemoryStore() })
 * const { ctx, result } = await gateway.chat({ headers, body, signal, surface: 'chat' })
 */
export async function createGateway(initial: GatewayConfig, opts: GatewayOptions) {
  const store = opts.store
  const metrics = opts.metrics ?? createMetrics()
  const log = opts.log ?? (() => {})
  const ledger = createLedger(store, { onError: (err) => log('warn', `ledger write failed, buffering: ${(err as Error).message}`) })
  const guardrailEvents = createEventLog<GuardrailEvent>(2000)
  const inflight = new Set<RequestAbortController>()
  let draining = false
  let reloadError: string | undefined
  // embedders resolve their provider at call time: providers are rebuilt on reloads
  const semanticCache = createSemanticEngine({ providers: () => rt.providers, targets: () => rt.targets, log })

  const build = (config: GatewayConfig, previous?: Runtime): Runtime => {
    validateRouting(config)
    validateClassifiers(config)
    const providers = createProviders(config)
    if (previous) {
      // keep pools and loaded models of providers whose config did not change
      for (const [name, p] of providers) {
        if (JSON.stringify(previous.config.providers[name]) === JSON.stringify(config.providers[name]) && previous.providers.has(name)) {
          void p.close()
          providers.set(name, previous.providers.get(name)!)
        }
      }
    }
    const targets = new Map<string, Target>()
    for (const [name, model] of Object.entries(config.models)) targets.set(name, { name, model, provider: providers.get(model.provider)! })
    return { config, providers, targets, store, ledger, metrics, guardrailEvents, semanticCache, log }
  }

  let rt = build(initial)
  await semanticCache.configure(rt.config)
  let keyring = makeKeyring(rt.config, store)
  let adminSha = rt.config.admin_key ? hashKey(rt.config.admin_key) : undefined
  const callTarget = createTargetCaller({ ledger, metrics })
  // breakers and load-balancer state outlive reloads
  const routing = createRoutingState({ metrics: createRoutingMetrics(metrics.registry, () => rt.providers) })
  // traces: one exporter per gateway, off (no step at all) without telemetry.otlp; changes need a restart
  const tracing = createTracing(initial.telemetry, { providerConfig: (name) => rt.config.providers[name], registry: metrics.registry, log })
  const makePipeline = (r: Runtime) => createPipeline([...(tracing ? [tracing.step] : []), ...(opts.steps?.(r) ?? []), createRouter({ resolveTarget: (n) => r.targets.get(n), callTarget, state: routing })])
  let run = makePipeline(rt)

  const identify = (headers: Headers): Promise<Principal> =>
    keyring(presentedKey({ authorization: headers.authorization, 'x-api-key': headers['x-api-key'] }))

  const policyOf = (principal: Principal) => rt.config.policies[principal.team]!

  const checkModel = (principal: Principal, alias: string, type: 'chat' | 'embedding') => {
    // a route of the team's own policy is a chat model of that team
    if (type === 'chat' && isRouteAlias(policyOf(principal), alias)) return undefined
    const target = rt.targets.get(alias)
    const allowed = policyOf(principal).models
    if (!target || (allowed && !allowed.includes(alias)) || target.model.type !== type) {
      throw new GatewayError(404, `The model "${alias}" does not exist or you do not have access to it.`, { code: 'model_not_found', param: 'model' })
    }
    return target
  }

  /** How long a session's running total outlives its last request (`sessions.idle_ttl_s`; 0 = for good). */
  const sessionIdleMs = (): number => rt.config.sessions.idle_ttl_s * 1000

  /** A session's running total, after its request ended (an end callback: only requests with a session pay the await). */
  const addSessionCost = async (c: RequestContext, session: string): Promise<void> => {
    try {
      c.state.sessionCostUsd = await ledger.addSessionCost(c.principal.team, session, c.costUsd, sessionIdleMs())
    } catch (err) {
      log('warn', `session total not updated: ${(err as Error).message}`)
    }
  }

  /**
   * Track a request so shutdown can drain it, and abort it when the client or the gateway gives up. A controller
   * handed over by the route (`abort`, aborted on client disconnect and used for nothing else) is aborted directly:
   * one per request, and it makes no AbortSignal here (src/abort.ts). Otherwise one of our own follows the client's
   * `signal`.
   */
  const track = (input: { signal?: AbortSignal; abort?: RequestAbortController }) => {
    if (draining) throw new GatewayError(503, 'The gateway is shutting down; retry on another instance.', { code: 'shutting_down', headers: { 'retry-after': '1' } })
    const direct = input.abort
    const clientSignal = input.signal
    const controller = direct ?? createRequestAbort()
    const onAbort = () => controller.abort(clientSignal!.reason)
    if (!direct && clientSignal) {
      if (clientSignal.aborted) controller.abort(clientSignal.reason)
      else clientSignal.addEventListener('abort', onAbort, { once: true })
    }
    inflight.add(controller)
    metrics.inflight.inc()
    let released = false
    const release = () => {
      if (released) return
      released = true
      inflight.delete(controller)
      if (!direct) clientSignal?.removeEventListener('abort', onAbort)
      metrics.inflight.dec()
    }
    return { controller, release }
  }

  return {
    get config() {
      return rt.config
    },
    get runtime() {
      return rt
    },
    store,
    ledger,
    metrics,
    identify,
    policyOf,
    isAdmin: (headers: Headers) => isAdminKey(presentedKey({ authorization: headers.authorization, 'x-api-key': headers['x-api-key'] }), adminSha),

    /** Run a chat request through the pipeline. The result's stream must be consumed or returned by the caller. */
    async chat(input: { headers: Headers; body: ChatRequest; signal?: AbortSignal; abort?: RequestAbortController; surface: RequestContext['surface']; state?: Record<string, unknown>; id?: string; principal?: Principal }): Promise<{ ctx: RequestContext; result: PipelineResult }> {
      // routes identify before reading the body (an unknown caller must not make us parse it) and pass it on
      const principal = input.principal ?? (await identify(input.headers))
      checkModel(principal, input.body.model, 'chat')
      const { controller, release } = track(input)
      let ctx: RequestContext
      try {
        // id: given at arrival (routes/request-id.ts), so error responses and ledger entries carry the same one
        ctx = createContext({ principal, policy: policyOf(principal), headers: input.headers, request: input.body, surface: input.surface, abort: controller, id: input.id })
        // a surface's own per-request state (e.g. the native body for pass-through, src/providers/native.ts)
        if (input.state) Object.assign(ctx.state, input.state)
      } catch (err) {
        release()
        throw err
      }
      // after the other end callbacks' store round trips: shutdown drains the request until this runs
      ctx.onDone.push(afterOthers((c, error) => {
        release()
        const status = requestStatus(error, controller.aborted)
        const last = c.attempts[c.attempts.length - 1]
        metrics.requests.inc({ team: c.principal.team, model: c.alias, provider: last?.provider ?? (c.cache === 'hit' || c.cache === 'semantic-hit' ? 'cache' : 'none'), status })
      }))
      ctx.onDone.push((c) => (c.session ? addSessionCost(c, c.session) : undefined))
      ctx.onDone.push((c) => {
        // the gateway's own share: arrival until the first provider call started (a classifier call counts as one)
        const first = c.attempts[0]
        if (first?.startedAt !== undefined) metrics.overhead.observe(Math.max(0, first.startedAt - c.startedAt) / 1000)
      })
      const result = await run(ctx)
      ctx.responseHeaders['x-sluice-request-id'] = ctx.id
      return { ctx, result }
    },

    /**
     * Embeddings: identify, admit (budgets and rate limits, as chat: `admissionFor`), call, settle. The
     * returned context carries the cost, the session total and the response headers (`costHeaders`).
     * Base64 is encoded here (Float32, little-endian) as the openai SDK expects.
     */
    async embeddings(input: { headers: Headers; body: EmbeddingRequest; signal?: AbortSignal; abort?: RequestAbortController; id?: string; principal?: Principal }): Promise<{ ctx: RequestContext; body: EmbeddingResponse }> {
      const principal = input.principal ?? (await identify(input.headers))
      const target = checkModel(principal, input.body.model, 'embedding')!
      const reason = target.provider.unavailableReason?.()
      if (reason) throw new GatewayError(503, `Model "${input.body.model}" is unavailable: ${reason}.`, { type: 'api_error', code: 'model_unavailable' })
      if (!target.provider.embed) throw new GatewayError(400, `The model "${input.body.model}" cannot create embeddings.`, { code: 'model_not_supported', param: 'model' })
      const { controller, release } = track(input)
      let ctx: RequestContext
      try {
        // a chat-shaped context: the same attribution (session, agent, tags, body user), admission and settlement
        const request: ChatRequest = { model: input.body.model, messages: [], ...(typeof input.body.user === 'string' ? { user: input.body.user } : {}) }
        ctx = createContext({ principal, policy: policyOf(principal), headers: input.headers, request, surface: 'embeddings', abort: controller, id: input.id })
      } catch (err) {
        release()
        throw err
      }
      ctx.responseHeaders['x-sluice-request-id'] = ctx.id
      const worst = embeddingWorstCase(input.body, target.model)
      let failure: unknown
      let admitted: Admitted | undefined
      try {
        admitted = await admissionFor(rt)?.admit(ctx, worst)
        const started = performance.now()
        const attempt: Attempt = { target: target.name, provider: target.provider.name, model: target.model.model, status: 'ok', costUsd: 0, startedAt: started, latencyMs: 0 }
        ctx.attempts.push(attempt)
        let usage = { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 }
        let estimated = false
        let httpStatus: number | undefined = 200
        try {
          const res = await target.provider.embed({ ...input.body, model: target.model.model }, { signal: ctx.signal })
          if (res.usage) usage = { prompt_tokens: res.usage.prompt_tokens, completion_tokens: 0, total_tokens: res.usage.total_tokens }
          else {
            usage = { prompt_tokens: worst.tokens, completion_tokens: 0, total_tokens: worst.tokens }
            estimated = true
          }
          const base64 = input.body.encoding_format === 'base64'
          return {
            ctx,
            body: {
              object: 'list',
              model: input.body.model,
              usage: { prompt_tokens: usage.prompt_tokens, total_tokens: usage.total_tokens },
              data: res.data.map((d, index) => ({ object: 'embedding', index: d.index ?? index, embedding: base64 ? toBase64(d.embedding) : toFloats(d.embedding) }))
            }
          }
        } catch (err) {
          // an abort after the input was sent may still be billed: charge the input, as chat charges the prompt
          const aborted = err instanceof UpstreamError && err.kind === 'aborted'
          attempt.status = aborted ? 'aborted' : 'error'
          attempt.error = err instanceof Error ? err.message : String(err)
          httpStatus = err instanceof GatewayError ? err.status : undefined
          if (aborted) {
            usage = { prompt_tokens: worst.tokens, completion_tokens: 0, total_tokens: worst.tokens }
            estimated = true
          }
          throw err
        } finally {
          const tokens = tokenCounts(usage)
          const cost = costOf(tokens, target.model.price)
          attempt.usage = usage
          attempt.estimated = estimated
          attempt.costUsd = cost
          attempt.latencyMs = performance.now() - started
          ctx.costUsd += cost
          ledger.record(ledgerEntryFor(ctx, {
            model: ledgerModel(target), provider: target.provider.name, stream: false, status: attempt.status, http_status: httpStatus,
            tokens, estimated, cost_usd: cost, latency_ms: Math.round(attempt.latencyMs), attempt: 1, error: attempt.error
          }))
          const labels = { team: principal.team, model: ctx.alias }
          metrics.cost.inc(labels, cost)
          if (tokens.input) metrics.tokens.inc({ ...labels, kind: 'input' }, tokens.input)
        }
      } catch (err) {
        failure = err
        throw err
      } finally {
        if (!failure) setRemainingHeader(ctx, admitted)
        if (ctx.session) await addSessionCost(ctx, ctx.session)
        // settle the reservation and correct the token buckets (admission's callbacks): as on the chat pipeline, an
        // answer does not wait for that, and the request stays in flight until it has run
        const ended = finish(ctx, failure).then(() => {
          release()
          const status = requestStatus(failure, ctx.abort.aborted)
          metrics.requests.inc({ team: principal.team, model: ctx.alias, provider: ctx.attempts.length ? target.provider.name : 'none', status })
        })
        ctx.ended = ended
        if (failure) await ended
      }
    },

    /** Models this principal may use, with availability. */
    models(principal: Principal) {
      const allowed = policyOf(principal).models
      const routes = routeAliases(policyOf(principal))
      const models: { id: string; type: 'chat' | 'embedding'; provider: string; unavailable?: string }[] = [...rt.targets.values()]
        .filter((t) => !routes.includes(t.name) && (!allowed || allowed.includes(t.name)))
        .map((t) => ({ id: t.name, type: t.model.type, provider: t.provider.name, unavailable: t.provider.unavailableReason?.() }))
      for (const id of routes) models.push({ id, type: 'chat', provider: 'sluice' })
      return models
    },

    /** Replace the running config. A config that fails to build leaves the running one in place. */
    reload(config: GatewayConfig) {
      const next = build(config, rt)
      const old = rt
      rt = next
      keyring = makeKeyring(config, store)
      adminSha = config.admin_key ? hashKey(config.admin_key) : undefined
      run = makePipeline(rt)
      void semanticCache.configure(config)
      for (const [name, p] of old.providers) if (rt.providers.get(name) !== p) setTimeout(() => void p.close(), 30_000).unref()
    },

    /** Record the outcome of a config reload attempt (shown by /readyz, counted in metrics). */
    reloadFailed(message: string | undefined) {
      reloadError = message
      metrics.configReloads.inc({ result: message ? 'error' : 'ok' })
    },

    /** Readiness: config loaded and the store reachable. */
    async readiness(): Promise<{ ok: boolean; checks: Record<string, string> }> {
      const checks: Record<string, string> = { config: reloadError ? `running the previous config; last reload failed: ${reloadError}` : 'ok' }
      try {
        await store.ping()
        checks.store = 'ok'
      } catch (err) {
        checks.store = `unreachable: ${(err as Error).message}`
      }
      if (ledger.pending() > 0) checks.ledger = `${ledger.pending()} entries buffered`
      if (draining) checks.shutdown = 'draining'
      return { ok: checks.store === 'ok' && !draining, checks }
    },

    /**
     * Graceful shutdown: refuse new requests, let in-flight ones (streams too) finish within the grace
     * period, abort the rest (their usage is still settled), flush the ledger, close providers and store.
     */
    async close(graceMs = 0) {
      draining = true
      const deadline = Date.now() + graceMs
      while (inflight.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
      for (const c of inflight) c.abort(new UpstreamError(503, 'The gateway is shutting down', { kind: 'aborted', retryable: false }))
      const settleDeadline = Date.now() + 2000
      while (inflight.size > 0 && Date.now() < settleDeadline) await new Promise((r) => setTimeout(r, 10))
      await ledger.flush()
      await Promise.allSettled([...rt.providers.values()].map((p) => p.close()))
      await semanticCache.close()
      await tracing?.close()
      await store.close()
    },

    /**
     * A second signal: abort every in-flight request now, wait up to `settleMs` for their usage to be settled,
     * then write the ledger. The caller bounds the whole (the ledger flush waits on the store) and exits.
     */
    async abortInflight(settleMs = 500) {
      draining = true
      for (const c of inflight) c.abort(new UpstreamError(503, 'The gateway is shutting down', { kind: 'aborted', retryable: false }))
      const settleDeadline = Date.now() + settleMs
      while (inflight.size > 0 && Date.now() < settleDeadline) await new Promise((r) => setTimeout(r, 10))
      await ledger.flush()
    },
    inflight: () => inflight.size
  }
}

export type Gateway = Awaited<ReturnType<typeof createGateway>>

function makeKeyring(config: GatewayConfig, store: Store) {
  const records: KeyRecord[] = config.keys.map((k) => ({ sha256: k.key_sha256 ?? hashKey(k.key!), team: k.team, user: k.user, name: k.name }))
  // keys created through the admin API live in the store, hashed
  return createKeyring(records, async (sha) => {
    const raw = await store.get(`key:${sha}`)
    if (!raw) return undefined
    const rec = JSON.parse(raw) as KeyRecord & { revoked?: boolean }
    return rec.revoked || !config.policies[rec.team] ? undefined : rec
  })
}

function toFloats(e: number[] | string): number[] {
  if (Array.isArray(e)) return e
  const buf = Buffer.from(e, 'base64')
  return Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4))
}

function toBase64(e: number[] | string): string {
  if (typeof e === 'string') return e
  return Buffer.from(new Float32Array(e).buffer).toString('base64')
}

/** The `status` label of `sluice_requests_total` for a request that ended with `error` (none: 200). */
function requestStatus(error: unknown, aborted: boolean): string {
  return error instanceof GatewayError ? String(error.status) : error ? (aborted ? '499' : '500') : '200'
}
