import OpenAI from 'openai'
import type { FakeOpenAI } from '../fakes/openai.js'
import { TEAM_A_KEY, TEAM_B_KEY, startTestGateway } from './gateway.js'

/** Models for routing tests: several names on the fake OpenAI upstream, one on a dead port. */
export function routingModels(extra: Record<string, unknown> = {}) {
  const price = (input: number, output: number) => ({ input, output })
  return {
    cheap: { provider: 'openai', model: 'cheap-model', price: price(0.1, 0.2) },
    mid: { provider: 'openai', model: 'mid-model', price: price(1, 2) },
    strong: { provider: 'openai', model: 'strong-model', price: price(5, 15) },
    big: { provider: 'openai', model: 'big-context-model', price: price(2, 4), context_window: 1_000_000 },
    small: { provider: 'openai', model: 'small-context-model', price: price(0.1, 0.2), context_window: 50 },
    judge: { provider: 'openai', model: 'judge-model', price: price(0.5, 1) },
    dead: { provider: 'dead', model: 'dead-model', price: price(1, 1) },
    ...extra
  }
}

/**
 * A gateway whose team `a` has the given routing section, on the fake upstream.
 *
 * @example
 * const env = await startRoutingGateway(fake, { routes: { smart: { fallback: ['dead', 'strong'] } } })
 */
export async function startRoutingGateway(fake: FakeOpenAI, routing: Record<string, unknown>, opts: { models?: Record<string, unknown>; providers?: Record<string, unknown>; policyB?: Record<string, unknown> } = {}) {
  const gw = await startTestGateway({
    policies: { a: { routing }, b: opts.policyB ?? {} },
    config: {
      providers: {
        openai: { kind: 'openai', base_url: fake.url, api_key: fake.apiKey },
        dead: { kind: 'openai', base_url: 'http://127.0.0.1:9/v1', api_key: 'sk-none', timeouts: { connect_ms: 500 } },
        ...opts.providers
      },
      models: opts.models ?? routingModels()
    }
  })
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 })
  const clientB = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_B_KEY, maxRetries: 0 })
  /** Ledger entries of one request, in attempt order. */
  const attemptsOf = async (requestId: string | null) => {
    await gw.gateway.ledger.flush()
    const all = await gw.gateway.store.queryLedger({ team: 'a' })
    return all.filter((e) => e.request_id === requestId).sort((x, y) => x.attempt - y.attempt)
  }
  return { gw, client, clientB, attemptsOf }
}

export const user = (content: string) => [{ role: 'user' as const, content }]
