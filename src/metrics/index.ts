import { Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import { counter, histogram } from './deferred.js'

/**
 * The gateway's Prometheus metrics. One registry per gateway instance, so tests can run several in a process.
 * Labels never include sessions or keys (cardinality); those live in the ledger.
 *
 * @example
 * const metrics = createMetrics()
 * metrics.requests.inc({ team: 'research', model: 'gpt-4o-mini', provider: 'openai', status: '200' })
 */
export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry()
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]

  return {
    registry,
    requests: counter({
      name: 'sluice_requests_total',
      help: 'Requests answered, by team, public model, provider and HTTP status.',
      labelNames: ['team', 'model', 'provider', 'status'] as const,
      registers
    }),
    tokens: counter({
      name: 'sluice_tokens_total',
      help: 'Tokens by kind (input, output, cached_input, cache_write).',
      labelNames: ['team', 'model', 'kind'] as const,
      registers
    }),
    cost: counter({ name: 'sluice_cost_usd_total', help: 'Spend in USD.', labelNames: ['team', 'model'] as const, registers }),
    upstreamLatency: histogram({
      name: 'sluice_upstream_latency_seconds',
      help: 'Time from sending to a provider until its answer ended.',
      labelNames: ['provider'] as const,
      buckets: latencyBuckets,
      registers
    }),
    ttft: histogram({
      name: 'sluice_time_to_first_token_seconds',
      help: 'Time from request arrival to the first streamed chunk.',
      labelNames: ['provider'] as const,
      buckets: latencyBuckets,
      registers
    }),
    overhead: histogram({
      name: 'sluice_gateway_overhead_seconds',
      help: 'Time the gateway itself added before the upstream call (identify, guard, admit, look up, plan).',
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05],
      registers
    }),
    inflight: new Gauge({ name: 'sluice_inflight_requests', help: 'Requests in flight.', registers }),
    ledgerPending: new Gauge({ name: 'sluice_ledger_pending_entries', help: 'Ledger entries buffered while the store is unreachable.', registers }),
    configReloads: counter({ name: 'sluice_config_reloads_total', help: 'Config reloads by result.', labelNames: ['result'] as const, registers })
  }
}

export type Metrics = ReturnType<typeof createMetrics>
