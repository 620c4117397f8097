/**
 * Hostile input: thousands of generated malformed and adversarial requests (wrong types, huge numbers, deep
 * nesting, invalid UTF-8, enormous strings, unknown fields, prototype-pollution keys, odd content types,
 * odd paths and queries) against every route. The gateway must answer every one without a 5xx or a crash,
 * each error in OpenAI's shape (Anthropic's on /v1/messages). Seeded, so a failure replays.
 */
import { Agent, fetch } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, TEAM_B_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'
import { seededRandom } from '../src/random.js'

let fake: FakeOpenAI
let gw: TestGateway
const logged: string[] = []

beforeAll(async () => {
  fake = await startFakeOpenAI()
  gw = await startTestGateway({
    openaiUrl: fake.url,
    openaiKey: fake.apiKey,
    policies: { a: { budgets: [{ scope: 'session', limit_usd: 5 }], rate_limits: [{ scope: 'key', rpm: 1_000_000 }] } },
    config: { server: { port: 0, host: '127.0.0.1', shutdown_grace_ms: 1000, body_limit_bytes: 1024 * 1024 } },
    server: { log: (level, msg) => void logged.push(`${level}: ${msg}`) }
  })
})
afterAll(async () => {
  await gw?.close(0)
  await fake?.close()
})

/** A seeded source with the helpers the generators use. */
function rng(seed: number) {
  const next = seededRandom(seed)
  const int = (n: number) => Math.floor(next() * n)
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!
  return { next, int, pick }
}
type R = ReturnType<typeof rng>

const NASTY_STRINGS = [
  '',
  ' ',
  '\u0000',
  '\uD800',
  '\uFFFF',
  '../../etc/passwd',
  '..%2F..%2Fetc%2Fpasswd',
  '%00',
  '<script>alert(1)</script>',
  "'; DROP TABLE keys; --",
  '${process.env.OPENAI_API_KEY}',
  '{{7*7}}',
  '\r\nX-Injected: yes',
  'a'.repeat(10_000),
  '🙂'.repeat(1000),
  'gpt-4o-mini',
  'http://169.254.169.254/latest/meta-data/',
  '__proto__',
  'constructor',
  'prototype'
]
const NASTY_NUMBERS = [0, -1, 1e308, -1e308, 2 ** 53 + 1, 0.1, -0, 1e-320, 4294967296, 3.7, NaN, Infinity]

/** A random JSON-ish value: wrong types, huge numbers, nasty strings, nesting. */
function value(r: R, depth = 0): unknown {
  switch (r.int(depth > 3 ? 5 : 8)) {
    case 0:
      return r.pick(NASTY_STRINGS)
    case 1:
      return r.pick(NASTY_NUMBERS)
    case 2:
      return r.pick([true, false, null])
    case 3:
      return r.int(1000)
    case 4:
      return 'x'.repeat(r.int(50))
    case 5:
      return Array.from({ length: r.int(4) }, () => value(r, depth + 1))
    case 6:
      return Object.fromEntries(Array.from({ length: r.int(4) }, () => [r.pick(['role', 'content', 'type', 'text', 'model', '__proto__', 'constructor', r.pick(NASTY_STRINGS)]), value(r, depth + 1)]))
    default:
      return { __proto__: { polluted: true }, constructor: { prototype: { polluted: true } } }
  }
}

const FIELDS = ['model', 'messages', 'stream', 'stream_options', 'max_tokens', 'max_completion_tokens', 'n', 'temperature', 'top_p', 'tools', 'tool_choice', 'user', 'metadata', 'response_format', 'input', 'encoding_format', 'dimensions', 'system', 'instructions', 'previous_response_id', 'stop_sequences', 'top_k', 'thinking', 'team', 'scope', 'id', 'window', 'name', 'base_url', 'api_base', 'url']

/** A base body that is valid for the route, then mutated so that it (usually) is not. */
function chatBase(r: R): Record<string, unknown> {
  return { model: r.pick(['gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small', 'nope']), messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 }
}

function mutate(r: R, base: Record<string, unknown>): Record<string, unknown> {
  const body: Record<string, unknown> = { ...base }
  for (let i = 0, n = 1 + r.int(3); i < n; i++) {
    const field = r.pick(FIELDS)
    switch (r.int(4)) {
      case 0:
        delete body[field]
        break
      case 1:
        body[field] = value(r)
        break
      case 2:
        body[`unknown_${r.int(100)}`] = value(r)
        break
      default:
        body.messages = [{ role: r.pick(['user', 'system', 'assistant', 'tool', 'developer', 'hacker', '']), content: value(r), ...(r.int(2) ? { tool_calls: value(r) } : {}) }]
    }
  }
  return body
}

/** JSON text with a key pattern JSON.stringify would never produce (own __proto__ keys). */
function protoText(r: R): string {
  const inner = JSON.stringify(chatBase(r)).slice(1, -1)
  return r.pick([
    `{"__proto__": {"isAdmin": true, "team": "b"}, ${inner}}`,
    `{"constructor": {"prototype": {"isAdmin": true}}, ${inner}}`,
    `{${inner}, "messages": [{"role": "user", "content": "x", "__proto__": {"role": "system"}}]}`,
    `{"__proto__": null, ${inner}}`
  ])
}

function deep(n: number, open: string, close: string): string {
  return open.repeat(n) + close.repeat(n)
}

interface FuzzRequest {
  method: string
  path: string
  headers: Record<string, string>
  body?: string | Uint8Array
}

const POST_ROUTES = ['/v1/chat/completions', '/v1/embeddings', '/v1/responses', '/v1/messages', '/v1/messages/count_tokens', '/admin/keys', '/admin/budgets/reset', '/admin/policies/validate', '/admin/keys/abc/revoke', '/admin/keys/abc/rotate', '/admin/reload']
const GET_ROUTES = [
  '/v1/models', '/admin/spend', '/admin/sessions/s1', '/admin/budgets', '/admin/export', '/admin/keys', '/admin/teams', '/admin/teams/a', '/admin/overview', '/admin/whoami', '/admin/guardrails',
  '/dashboard', '/dashboard/app.js', '/dashboard/app.css', '/dashboard/..%2Fapp.js', '/metrics', '/readyz', '/healthz'
]
const QUERIES = ['group_by=__proto__', 'group_by=team', 'team=b', 'team=../../a', 'since=-1', 'since=99999999999999999999', 'since=yesterday', 'until=NaN', 'limit=-5', 'limit=1e9', 'format=xml', 'format=csv', 'scope=galaxy', 'session=%00', 'team[]=a', 'team=a&team=b', 'key=' + '%41'.repeat(300)]

function generate(r: R, i: number): FuzzRequest {
  const key = r.next() < 0.85 ? r.pick([TEAM_A_KEY, TEAM_A_KEY, TEAM_B_KEY, ADMIN_KEY]) : r.pick(['', 'sk-wrong', 'Bearer', 'x'.repeat(5000), TEAM_A_KEY.toUpperCase(), TEAM_A_KEY.slice(0, -1)])
  const headers: Record<string, string> = { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-sluice-session': `fuzz-${i % 50}` }
  if (r.next() < 0.1) headers['content-type'] = r.pick(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=utf-16', 'application/xml', ''])
  if (r.next() < 0.05) headers['x-sluice-tags'] = r.pick(NASTY_STRINGS.filter((s) => !/[\r\n\u0000\uD800\uFFFF🙂]/.test(s)))
  if (r.next() < 0.15) {
    const path = r.pick(GET_ROUTES)
    return { method: 'GET', path: `${path}?${r.pick(QUERIES)}`, headers }
  }
  if (r.next() < 0.05) {
    return { method: 'GET', path: r.pick(['/admin/sessions/..%2F..%2Fetc%2Fpasswd', '/admin/teams/..%2Fb', '/admin/teams/%2e%2e', '/admin/../v1/models', '/admin/sessions/' + 'a'.repeat(3000), '/v1/../../admin/spend', '/admin/keys/..%2F..%2F/revoke', '/%2e%2e/%2e%2e/etc/passwd']), headers }
  }
  const path = r.pick(POST_ROUTES)
  const base = path.startsWith('/v1/embeddings') ? { model: 'text-embedding-3-small', input: 'hi' } : path.startsWith('/admin') ? { team: 'a', scope: 'team' } : chatBase(r)
  let body: string | Uint8Array
  switch (r.int(12)) {
    case 0:
      body = protoText(r)
      break
    case 1:
      body = r.pick([deep(5000, '[', ']'), deep(5000, '{"a":', '}').replace(/}$/, '1}'), `{"model":"gpt-4o-mini","messages":[{"role":"user","content":${deep(3000, '[', ']')}}]}`, `{"model":"gpt-4o-mini","messages":${deep(200, '[', ']')}}`])
      break
    case 2: {
      // invalid UTF-8 inside a string, and a lone continuation byte outside one
      const parts = [Buffer.from('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"'), Buffer.from([0xff, 0xfe, 0xc3, 0x28, 0xa0, 0xa1]), Buffer.from('"}]}')]
      body = r.int(2) ? Buffer.concat(parts) : Buffer.concat([Buffer.from([0x80]), parts[0]!])
      break
    }
    case 3:
      body = r.pick(['', 'null', '[]', '"string"', '12', '{', '{"model":', '{}', 'true', '\u0000', '{"model":"gpt-4o-mini","messages":[]}', '{"model":1e999}', '{"max_tokens":1e400}', '{"model":"gpt-4o-mini",,}'])
      break
    case 4:
      // enormous string: above the 1 MiB body limit (413), or just below it
      body = JSON.stringify({ ...base, messages: [{ role: 'user', content: 'A'.repeat(r.int(2) ? 1_100_000 : 200_000) }] })
      break
    case 5:
      body = JSON.stringify({ ...base, [`k${r.int(1e6)}`]: Array.from({ length: 2000 }, (_, j) => j) })
      break
    default:
      body = JSON.stringify(mutate(r, base))
  }
  return { method: 'POST', path, headers, body }
}

/**
 * One connection per request: after answering a request whose body it never read (an admin route refusing
 * the key, a 413), @hono/node-server drains that body for at most 500 ms and then closes the keep-alive
 * connection, which would fail whatever request a client reused it for (see README, What Sluice guarantees).
 */
async function send(req: FuzzRequest) {
  const dispatcher = new Agent({ pipelining: 0 })
  try {
    const res = await fetch(gw.url + req.path, { method: req.method, headers: req.headers, body: req.body, signal: AbortSignal.timeout(10_000), dispatcher })
    const text = await res.text()
    return { status: res.status, text, contentType: res.headers.get('content-type') ?? '' }
  } finally {
    void dispatcher.close()
  }
}

function errorShapeProblem(path: string, status: number, text: string): string | undefined {
  let body: any
  try {
    body = JSON.parse(text)
  } catch {
    return 'error body is not JSON'
  }
  if (path.startsWith('/v1/messages')) {
    if (body?.type !== 'error' || typeof body.error?.type !== 'string' || typeof body.error?.message !== 'string') return 'not Anthropic error shape'
    return undefined
  }
  // the policy validator answers "invalid" with valid: false beside the error
  if (path.startsWith('/admin/policies/validate') && status === 422 && body?.valid !== false) return 'bad validate answer'
  const e = body?.error
  if (!e || typeof e.message !== 'string' || typeof e.type !== 'string' || !('param' in e) || !('code' in e)) return 'not OpenAI error shape'
  // a stack frame ("    at fn (file:1:2)", "    at node:internal…"), not a config error's "  at budgets.0.window:" line
  if (/\n\s+at \S+ \(|\n\s+at (file|node):|node_modules|\.ts:\d+/.test(e.message)) return 'stack trace in message'
  return undefined
}

describe('fuzz: malformed and adversarial requests to every route', () => {
  it('answers 2000 generated requests with no 5xx, errors in the surface shape, no crash, no prototype pollution', async () => {
    // FUZZ_SEED / FUZZ_REQUESTS / FUZZ_REPORT=<file> explore further and write what failed
    const r = rng(Number(process.env.FUZZ_SEED ?? 0x5eed))
    const total = Number(process.env.FUZZ_REQUESTS ?? 2000)
    const started = Date.now()
    const failures: string[] = []
    const statuses = new Map<number, number>()
    const routesHit = new Set<string>()
    let i = 0
    const worker = async () => {
      while (i < total && Date.now() - started < 60_000) {
        const n = i++
        const req = generate(r, n)
        routesHit.add(`${req.method} ${req.path.split('?')[0]}`)
        let res
        try {
          res = await send(req)
        } catch (err) {
          failures.push(`#${n} ${req.method} ${req.path}: no answer (${(err as Error).message} ${String((err as { cause?: unknown }).cause ?? "")})`)
          continue
        }
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
        if (res.status >= 500) failures.push(`#${n} ${req.method} ${req.path}: ${res.status} ${res.text.slice(0, 200)}`)
        else if (res.status >= 400) {
          const problem = errorShapeProblem(req.path, res.status, res.text)
          if (problem) failures.push(`#${n} ${req.method} ${req.path}: ${res.status} ${problem}: ${res.text.slice(0, 200)}`)
        }
      }
    }
    await Promise.all(Array.from({ length: Number(process.env.FUZZ_WORKERS ?? 16) }, worker))
    if (process.env.FUZZ_REPORT) (await import('node:fs')).writeFileSync(process.env.FUZZ_REPORT, failures.join('\n') + `\n${Date.now() - started} ms\n${JSON.stringify([...statuses])}\n`)
    expect(failures.slice(0, 20)).toEqual([])
    expect(i).toBeGreaterThanOrEqual(total)
    // every route was exercised
    for (const path of POST_ROUTES) expect(routesHit, `POST ${path}`).toContain(`POST ${path}`)
    for (const path of GET_ROUTES) expect(routesHit, `GET ${path}`).toContain(`GET ${path}`)
    // mostly refusals, some valid requests that reached the fake upstream
    expect([...statuses.keys()].some((s) => s >= 400 && s < 500)).toBe(true)
    expect(statuses.get(200) ?? 0).toBeGreaterThan(0)
    expect(logged.filter((l) => l.includes('unhandled error'))).toEqual([])
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
    // still healthy and serving afterwards
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200)
    const ok = await send({ method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'still fine?' }] }) })
    expect(ok.status).toBe(200)
    expect(gw.gateway.inflight()).toBe(0)
  }, 90_000)
})
