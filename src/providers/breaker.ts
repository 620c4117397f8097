import { GatewayError } from '../errors.js'

export type BreakerState = 'closed' | 'open' | 'half_open'

export interface BreakerSettings {
  /** Consecutive failures that open the circuit. */
  failures: number
  /** Time an open circuit waits before letting one probe through. */
  cooldown_ms: number
}

interface Circuit {
  state: BreakerState
  failures: number
  openedAt: number
  /** The cooldown of the settings that opened it, so its state can be read without them. */
  cooldownMs: number
  /** A half-open probe is in flight: other calls are still refused. */
  probing: boolean
}

/**
 * Circuit breakers, one per target, shared by every request of the gateway (and kept across config reloads):
 * after `failures` consecutive failures a target is skipped for `cooldown_ms`, then one probe call is let
 * through; its success closes the circuit, its failure opens it again.
 *
 * @example
 * const breakers = createBreakers({ onChange: (target, state) => gauge.set({ target }, STATE[state]) })
 * const permit = breakers.acquire('gpt-4o', settings) // throws 503 circuit_open while open
 * try { await call(); permit.success() } catch (e) { permit.failure() }
 */
export function createBreakers(opts: { now?: () => number; onChange?: (target: string, state: BreakerState) => void } = {}) {
  const now = opts.now ?? Date.now
  const circuits = new Map<string, Circuit>()

  const circuitOf = (target: string): Circuit => {
    let c = circuits.get(target)
    if (!c) circuits.set(target, (c = { state: 'closed', failures: 0, openedAt: 0, cooldownMs: 0, probing: false }))
    return c
  }
  const move = (target: string, c: Circuit, state: BreakerState) => {
    if (c.state === state) return
    c.state = state
    opts.onChange?.(target, state)
  }

  /** An open circuit whose cooldown has passed reads as half-open: the next call is the probe. */
  const stateOf = (c: Circuit, cooldownMs = c.cooldownMs): BreakerState =>
    c.state === 'open' && now() - c.openedAt >= cooldownMs ? 'half_open' : c.state

  return {
    /** The state a call would meet now (an expired open circuit reads as half-open). */
    state(target: string, settings?: BreakerSettings): BreakerState {
      const c = circuits.get(target)
      return c ? stateOf(c, settings?.cooldown_ms) : 'closed'
    },

    /** Every target's state as a call would meet it now (for a gauge read at scrape time). */
    states(): [target: string, state: BreakerState][] {
      return [...circuits].map(([target, c]) => [target, stateOf(c)])
    },

    /**
     * Ask to call a target. Throws a 503 `circuit_open` error while the circuit is open (or a probe is already
     * out); otherwise returns a permit whose `success`/`failure` must be called once the call is judged.
     */
    acquire(target: string, settings: BreakerSettings) {
      const c = circuitOf(target)
      if (c.state === 'open') {
        const waited = now() - c.openedAt
        if (waited < settings.cooldown_ms) throw circuitOpen(target, settings.cooldown_ms - waited)
        move(target, c, 'half_open')
      }
      if (c.state === 'half_open') {
        if (c.probing) throw circuitOpen(target, settings.cooldown_ms)
        c.probing = true
      }
      const probe = c.state === 'half_open'
      let settled = false
      return {
        success() {
          if (settled) return
          settled = true
          if (probe) c.probing = false
          c.failures = 0
          move(target, c, 'closed')
        },
        failure() {
          if (settled) return
          settled = true
          if (probe) c.probing = false
          c.failures++
          if (probe || c.failures >= settings.failures) {
            c.openedAt = now()
            c.cooldownMs = settings.cooldown_ms
            move(target, c, 'open')
          }
        },
        /** The call ended without telling anything about the target's health (client left, bad request). */
        release() {
          if (settled) return
          settled = true
          if (probe) c.probing = false
        }
      }
    }
  }
}

export type Breakers = ReturnType<typeof createBreakers>
export type BreakerPermit = ReturnType<Breakers['acquire']>

function circuitOpen(target: string, retryInMs: number): GatewayError {
  return new GatewayError(503, `Target "${target}" is failing; its circuit breaker is open. Retry in ${Math.ceil(retryInMs / 1000)}s.`, {
    type: 'api_error',
    code: 'circuit_open',
    headers: { 'retry-after': String(Math.max(1, Math.ceil(retryInMs / 1000))) }
  })
}
