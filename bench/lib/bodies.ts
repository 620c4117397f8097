/** Request bodies for benchmarks: a realistic small agent prompt, unique per request or constant. */

const VOCAB = (
  'agent tool call result file search query index vector cache budget token model route stream chunk ' +
  'policy team session user key price cost ledger guard secret email phone address order invoice ship ' +
  'deliver report summary table chart graph metric latency error retry timeout fallback cascade local ' +
  'frontier prompt answer reason plan step task goal check verify test build deploy review merge branch ' +
  'commit issue ticket sprint release version config value field record schema column row query join'
).split(' ')

const SYSTEM =
  'You are a careful assistant inside an agent loop. Answer briefly, use the tools when they help, ' +
  'and never reveal secrets or personal data. Prefer short plain sentences.'

/** Deterministic words for request i: different i give different (and semantically unrelated) prompts. */
export function promptWords(i: number, n = 24): string {
  let x = (i + 1) * 2654435761
  const out: string[] = []
  for (let k = 0; k < n; k++) {
    x = (Math.imul(x ^ (x >>> 13), 1597334677) + k) >>> 0
    out.push(VOCAB[x % VOCAB.length]!)
  }
  return `Request ${i}: ${out.join(' ')}.`
}

export interface BodyOptions {
  model: string
  stream?: boolean
  /** unique: a different prompt each request (cache misses); same: one constant prompt (cache hits). */
  mode: 'unique' | 'same'
  maxTokens?: number
  /**
   * Unique prompts spread over this many system prompts, request i under the (i mod n)-th: as many semantic-cache
   * scopes, as a gateway serving several agents sees (default 1: one scope, the bench's crowded case).
   */
  systems?: number
  /**
   * Earlier turns before the request's own prompt (a user message and a ~400-character answer each), the same for
   * every request: an agent's conversation resent every turn (default 0).
   */
  history?: number
}

/** The JSON of `turns` earlier user/assistant message pairs, each followed by a comma. */
function historyJson(turns: number): string {
  let out = ''
  for (let t = 0; t < turns; t++) {
    const answer = Array.from({ length: 4 }, (_, k) => promptWords(1_000_000 + t * 4 + k, 14)).join(' ')
    out += `{"role":"user","content":${JSON.stringify(promptWords(900_000 + t))}},{"role":"assistant","content":${JSON.stringify(answer)}},`
  }
  return out
}

/**
 * A body factory for the load generators.
 *
 * @example
 * const body = chatBody({ model: 'gpt-4o-mini', mode: 'unique' }); body(7)
 */
export function chatBody(opts: BodyOptions): (i: number) => string {
  const head = `{"model":${JSON.stringify(opts.model)},"max_tokens":${opts.maxTokens ?? 16},` +
    (opts.stream ? '"stream":true,"stream_options":{"include_usage":true},' : '') +
    `"messages":[{"role":"system","content":${JSON.stringify(SYSTEM)}},${historyJson(opts.history ?? 0)}{"role":"user","content":`
  if (opts.mode === 'same') {
    const constant = `${head}${JSON.stringify(promptWords(424242))}}]}`
    return () => constant
  }
  const systems = opts.systems ?? 1
  if (systems <= 1) return (i) => `${head}${JSON.stringify(promptWords(i))}}]}`
  const heads = Array.from({ length: systems }, (_, k) => head.replace(JSON.stringify(SYSTEM), JSON.stringify(`${SYSTEM} You are agent ${k}.`)))
  return (i) => `${heads[i % systems]}${JSON.stringify(promptWords(i))}}]}`
}
