import { Hono } from 'hono'
import { withArrival } from '../routes/arrival.js'
import { serve, type ServerType } from '@hono/node-server'
import type { GatewayConfig } from './config/load.js'
import type { StoreConfig } from './config/schema.js'
import { GatewayError, toGatewayError } from './errors.js'
import { toAnthropicError } from './providers/anthropic/index.js'
import { createGateway, type Gateway, type StepsFactory } from './gateway.js'
import { createMemoryStore } from './store/memory.js'
import type { Store } from './store/types.js'
import { adminRoutes } from '../routes/admin.js'
import { anthropicRoutes } from '../routes/anthropic.js'
import { budgetRoutes } from '../routes/budgets.js'
import { dashboardRoutes } from '../routes/dashboard.js'
import { healthRoutes } from '../routes/health.js'
import { metricsRoutes } from '../routes/metrics.js'
import { openaiRoutes } from '../routes/openai.js'
import { responsesRoutes } from '../routes/responses.js'
import { pipelineSteps } from './steps.js'

/** The gateway's logger: a message, and for events (guardrail actions) fields a JSON log line carries as keys. */
export type Logger = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void

export interface ServerOptions {
  /** Use this store instead of the one the config names (tests). */
  store?: Store
  steps?: StepsFactory
  log?: Logger
}

/**
 * Create the store a config names: memory by default, Redis (single node or Cluster) for many instances.
 * A Redis that cannot be reached at start does not stop the gateway: it starts not ready (/readyz says where it
 * cannot connect), admission follows `store.on_store_error`, and ioredis keeps reconnecting.
 */
export async function createStore(config: StoreConfig, log?: Logger): Promise<Store> {
  if (config.kind === 'memory') return createMemoryStore({ maxLedgerEntries: config.max_ledger_entries, maxCacheBytes: config.max_cache_bytes })
  // loaded only here: ioredis is about 20 MB of a memory-store gateway's RSS that it would never use
  const { createRedisStore } = await import('./store/redis.js')
  return createRedisStore({
    url: config.url,
    urls: config.urls,
    prefix: config.prefix,
    maxLedgerEntries: config.max_ledger_entries,
    autoPipelining: config.auto_pipelining,
    batchWrites: config.batch_writes,
    commandTimeoutMs: config.command_timeout_ms,
    onUnreachableAtStart: (err, where) =>
      log?.('error', `store: cannot connect to Redis at ${where} (store.url${config.urls?.length ? 's' : ''}): ${err.message}; starting not ready, reconnecting in the background (store.on_store_error: ${config.on_store_error})`)
  })
}

/**
 * Build the Hono app of a gateway from config: every surface mounted on one engine. Serve `fetch`, the app with
 * what every request gets on arrival (an id, the body bound, unread bodies drained; routes/arrival.ts);
 * `app.fetch` alone answers without them.
 *
 * @example
 * const { fetch, gateway } = await createApp(await loadConfig('config/gateway.yaml'))
 * serve({ fetch, port: 8080 })
 */
export async function createApp(config: GatewayConfig, opts: ServerOptions = {}) {
  const store = opts.store ?? (await createStore(config.store, opts.log))
  const gateway = await createGateway(config, { store, steps: opts.steps ?? pipelineSteps, log: opts.log })
  const app = new Hono()

  app.onError((err, c) => {
    const e = toGatewayError(err)
    if (!(err instanceof GatewayError)) opts.log?.('error', `unhandled error on ${c.req.method} ${c.req.path}: ${(err as Error)?.stack ?? err}`)
    return c.json(e.toJSON(), e.status as 400, e.headers)
  })
  app.notFound((c) => c.json(new GatewayError(404, `Unknown route ${c.req.method} ${c.req.path}.`, { code: 'unknown_route' }).toJSON(), 404))

  app.route('/v1', openaiRoutes(gateway))
  app.route('/v1', anthropicRoutes(gateway))
  app.route('/v1', responsesRoutes(gateway))
  app.route('/admin', adminRoutes(gateway))
  app.route('/admin', budgetRoutes(gateway))
  app.route('/', healthRoutes(gateway))
  app.route('/', dashboardRoutes())
  if (config.metrics.enabled) app.route('/', metricsRoutes(gateway))

  const limitBytes = config.server.body_limit_bytes
  // every request, unknown routes included, gets its id, its body bound and an unread body drained (routes/arrival.ts)
  const fetch = withArrival(app.fetch, {
    maxBodyBytes: limitBytes,
    bounded: (path) => /^\/(v1|admin)(\/|$)/.test(path),
    tooLarge: (path) => {
      const err = new GatewayError(413, `Request body is larger than ${limitBytes} bytes (server.body_limit_bytes).`, { code: 'request_too_large' })
      // each surface answers in its own error shape, even before its route runs
      return { status: 413, body: path.startsWith('/v1/messages') ? toAnthropicError(err).body : err.toJSON() }
    }
  })
  return { app, gateway, fetch }
}

/**
 * Start a gateway server on a port. `close` drains in-flight requests (streams included) within the grace
 * period, flushes the ledger and stops.
 *
 * @example
 * const server = await startServer(config)
 * await server.close()
 */
export async function startServer(config: GatewayConfig, opts: ServerOptions & { port?: number; host?: string } = {}) {
  const { app, gateway, fetch } = await createApp(config, opts)
  const port = opts.port ?? config.server.port
  const host = opts.host ?? config.server.host
  const server: ServerType = await new Promise((resolve) => {
    // Slow clients (slowloris): headers must arrive within 30 s (or the request timeout, if shorter) and the
    // whole request within server.request_timeout_ms, else 408. Node checks these timers only every
    // connectionsCheckingInterval (30 s by default), so check every second to enforce them as configured.
    const requestTimeout = config.server.request_timeout_ms
    const serverOptions = { requestTimeout, headersTimeout: Math.min(30_000, requestTimeout), connectionsCheckingInterval: 1000 }
    const s = serve({ fetch, port, hostname: host, serverOptions }, () => resolve(s))
  })
  const http = server as unknown as import('node:http').Server
  const address = http.address()
  const boundPort = typeof address === 'object' && address ? address.port : port
  const bound = typeof address === 'object' && address ? address.address : host
  const hostPart = (a: string) => (a.includes(':') ? `[${a}]` : a)
  // a wildcard address is reached on loopback from this machine
  const reachable = bound === '0.0.0.0' ? '127.0.0.1' : bound === '::' ? '::1' : bound
  return {
    app,
    gateway: gateway as Gateway,
    port: boundPort,
    /** A URL that reaches the server from this machine. */
    url: `http://${hostPart(reachable)}:${boundPort}`,
    /** The address the server is bound to, as the OS reports it (0.0.0.0 or :: for every interface). */
    listening: `http://${hostPart(bound)}:${boundPort}`,
    async close(graceMs = config.server.shutdown_grace_ms) {
      http.close()
      await gateway.close(graceMs)
      http.closeAllConnections()
    }
  }
}
