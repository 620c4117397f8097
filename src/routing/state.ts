import { createBreakers, type Breakers } from '../providers/breaker.js'
import type { RoutingMetrics } from './metrics.js'

/**
 * What routing remembers between requests, shared by all teams and kept across config reloads: circuit
 * breakers per target, outstanding requests and a latency average per load-balanced member.
 *
 * @example
 * const state = createRoutingState({ metrics: createRoutingMetrics(registry, () => providers) })
 */
export function createRoutingState(opts: { metrics?: RoutingMetrics; random?: () => number; now?: () => number } = {}) {
  const outstanding = new Map<string, number>()
  const latencyMs = new Map<string, number>()
  const breakers: Breakers = createBreakers({ now: opts.now, onChange: (target, state) => opts.metrics?.setBreaker(target, state) })
  return {
    breakers,
    metrics: opts.metrics,
    random: opts.random ?? Math.random,
    outstanding: (key: string) => outstanding.get(key) ?? 0,
    /** Count a request against a member until the returned function is called (once). */
    hold(key: string): () => void {
      outstanding.set(key, (outstanding.get(key) ?? 0) + 1)
      let done = false
      return () => {
        if (done) return
        done = true
        outstanding.set(key, Math.max(0, (outstanding.get(key) ?? 1) - 1))
      }
    },
    latency: (key: string) => latencyMs.get(key),
    /** Exponentially weighted moving average (α = 0.3) of the time until a member's answer started. */
    observeLatency(key: string, ms: number) {
      const prev = latencyMs.get(key)
      latencyMs.set(key, prev === undefined ? ms : prev * 0.7 + ms * 0.3)
    }
  }
}

export type RoutingState = ReturnType<typeof createRoutingState>
