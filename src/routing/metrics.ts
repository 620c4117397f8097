import { Gauge, type Registry } from 'prom-client'
import { counter } from '../metrics/deferred.js'
import type { Provider } from '../providers/types.js'
import type { BreakerState, Breakers } from '../providers/breaker.js'

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, half_open: 1, open: 2 }

/** A provider that reports live numbers (the llama provider's `stats()`). */
interface ProviderWithStats extends Provider {
  stats(): { queued: number; active: number; tokensPerSecond: number }
}

/**
 * Routing and resilience metrics, registered once per gateway registry (they outlive config reloads).
 * Local-model gauges are read from the providers at scrape time.
 *
 * @example
 * const m = createRoutingMetrics(metrics.registry, () => rt.providers)
 * m.decisions.inc({ alias: 'smart', target: 'gpt-4o', reason: 'fallback' })
 */
export function createRoutingMetrics(registry: Registry, providers: () => Map<string, Provider>) {
  const registers = [registry]
  // the breakers whose state the gauge reports, read at scrape time (an open circuit past its cooldown is half-open)
  let breakers: Pick<Breakers, 'states'> | undefined
  const local = () => [...providers().values()].filter((p): p is ProviderWithStats => typeof (p as Partial<ProviderWithStats>).stats === 'function')
  return {
    decisions: counter({
      name: 'sluice_routing_decisions_total',
      help: 'Targets tried by the router, by public model, target and why it was tried (single, fallback, loadbalance, conditional, cascade, router, retry).',
      labelNames: ['alias', 'target', 'reason'] as const,
      registers
    }),
    escalations: counter({
      name: 'sluice_cascade_escalations_total',
      help: 'Cascade tiers whose answer was rejected, by public model, tier (0 = cheapest) and the check that failed.',
      labelNames: ['alias', 'tier', 'check'] as const,
      registers
    }),
    accepted: counter({
      name: 'sluice_cascade_accepted_total',
      help: 'Cascade answers accepted, by public model and tier.',
      labelNames: ['alias', 'tier'] as const,
      registers
    }),
    retries: counter({
      name: 'sluice_retries_total',
      help: 'Retries of a target after a retryable failure, by target and failure kind.',
      labelNames: ['target', 'kind'] as const,
      registers
    }),
    fallbacks: counter({
      name: 'sluice_fallbacks_total',
      help: 'Moves to the next target of a fallback chain, by public model, failed target and failure kind.',
      labelNames: ['alias', 'target', 'kind'] as const,
      registers
    }),
    breakerState: new Gauge({
      name: 'sluice_breaker_state',
      help: 'Circuit breaker state per target: 0 closed, 1 half-open (cooldown over: the next call is the probe), 2 open.',
      labelNames: ['target'] as const,
      registers,
      collect() {
        if (!breakers) return
        for (const [target, state] of breakers.states()) this.set({ target }, BREAKER_VALUE[state])
      }
    }),
    breakerTransitions: counter({
      name: 'sluice_breaker_transitions_total',
      help: 'Circuit breaker state changes per target.',
      labelNames: ['target', 'state'] as const,
      registers
    }),
    localQueue: new Gauge({
      name: 'sluice_local_queue_depth',
      help: 'Requests waiting for a sequence of a local (llama) model.',
      labelNames: ['provider'] as const,
      registers,
      collect() {
        this.reset()
        for (const p of local()) this.set({ provider: p.name }, p.stats().queued)
      }
    }),
    localActive: new Gauge({
      name: 'sluice_local_active_sequences',
      help: 'Sequences of a local (llama) model generating now.',
      labelNames: ['provider'] as const,
      registers,
      collect() {
        this.reset()
        for (const p of local()) this.set({ provider: p.name }, p.stats().active)
      }
    }),
    localTokensPerSecond: new Gauge({
      name: 'sluice_local_tokens_per_second',
      help: 'Decode speed of a local (llama) model, generated tokens per second (moving average).',
      labelNames: ['provider'] as const,
      registers,
      collect() {
        this.reset()
        for (const p of local()) this.set({ provider: p.name }, p.stats().tokensPerSecond)
      }
    }),
    /** Report these breakers' states in `sluice_breaker_state`. */
    watchBreakers(source: Pick<Breakers, 'states'>) {
      breakers = source
    },
    setBreaker(target: string, state: BreakerState) {
      this.breakerState.set({ target }, BREAKER_VALUE[state])
      this.breakerTransitions.inc({ target, state })
    }
  }
}

export type RoutingMetrics = ReturnType<typeof createRoutingMetrics>
