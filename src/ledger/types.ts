/**
 * One ledger entry per provider attempt (cascade tiers and fallbacks included), and one per cache hit.
 * Holds no key material: `key_id` is a short hash prefix.
 */
export interface LedgerEntry {
  id: string
  request_id: string
  /** Epoch milliseconds. */
  ts: number
  team: string
  key_id: string
  user?: string
  session?: string
  agent?: string
  tags?: string[]
  /** Public model name the client asked for. */
  alias: string
  /** Target that was called (`provider/model`), or `cache` for a cache hit. */
  model: string
  provider: string
  surface: string
  stream: boolean
  status: 'ok' | 'error' | 'aborted' | 'rejected' | 'cache_hit'
  http_status?: number
  tokens: { input: number; output: number; cached_input: number; cache_write: number }
  /** Tokens were counted with tiktoken, not reported by the provider. */
  estimated: boolean
  cost_usd: number
  saved_usd?: number
  cache?: string
  latency_ms: number
  ttft_ms?: number
  attempt: number
  reason?: string
  error?: string
  /** Guardrail actions taken on the request, `rule:action` (e.g. `pii.email:redact`); never the matched text. */
  guardrails?: string[]
}

export interface LedgerFilter {
  team?: string
  key_id?: string
  user?: string
  session?: string
  agent?: string
  tag?: string
  model?: string
  alias?: string
  /** Epoch milliseconds, inclusive. */
  since?: number
  until?: number
  limit?: number
}
