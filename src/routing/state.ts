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
  const latencyMs = new Map<string, { ms: number; at: number }>()
  const now = opts.now ?? Date.now
  const breakers: Breakers = createBreakers({ now: opts.now, onChange: (target, state) => opts.metrics?.setBreaker(target, state) })
  opts.metrics?.watchBreakers(breakers)
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
    /**
     * A member's latency average, or undefined when it was never measured or its estimate is older than
     * LATENCY_TTL_MS: a member that lost once is measured again later instead of starving forever.
     */
    latency(key: string): number | undefined {
      const l = latencyMs.get(key)
      return l && now() - l.at < LATENCY_TTL_MS ? l.ms : undefined
    },
    /** Exponentially weighted moving average (α = 0.3) of the time until a member's answer started. */
    observeLatency(key: string, ms: number) {
      const prev = latencyMs.get(key)
      const fresh = prev && now() - prev.at < LATENCY_TTL_MS
      latencyMs.set(key, { ms: fresh ? prev.ms * 0.7 + ms * 0.3 : ms, at: now() })
    }
  }
}

const LATENCY_TTL_MS = 30_000

export type RoutingState = ReturnType<typeof createRoutingState>
