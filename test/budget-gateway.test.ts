import { createServer, type Server } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import OpenAI, { type APIError } from 'openai'
import { stringify } from 'yaml'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createAdmitStep } from '../src/budget/index.js'
import { loadConfig, type ResolvedModel } from '../src/config/load.js'
import { CLASSIFIER_PROMPT, classifierWorstCase } from '../src/guardrails/classifier.js'
import { guardrailsPolicySchema } from '../src/guardrails/schema.js'
import { countPromptTokens } from '../src/tokens.js'
import { startFakeOpenAI, type FakeOpenAI, type FakeOpenAIReply } from './fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, TEAM_B_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'
import { errorHeader, refusal } from './helpers/errors.js'

const KEY_C = 'sk-sluice-team-c-0000000000000003'
const KEY_D = 'sk-sluice-team-d-0000000000000004'
const KEY_E = 'sk-sluice-team-e-0000000000000005'
const A_LIMIT = 0.0002

let fake: FakeOpenAI
let gw: TestGateway
let hook: Server
let hookUrl: string
const alerts: any[] = []

const policies = {
  a: { budgets: [{ scope: 'team', limit_usd: A_LIMIT, window: 'day' }] },
  b: {},
  c: { budgets: [{ scope: 'key', limit_usd: 0.0005, window: 'day', on_exceed: { downgrade_to: 'gpt-4o-mini' } }] },
  d: { budgets: [{ scope: 'team', limit_usd: 0.000001, window: 'total', shadow: true }] },
  e: { budgets: [{ scope: 'team', limit_usd: 0.0001, window: 'month', alert_at: [0.5] }] }
}

beforeAll(async () => {
  fake = await startFakeOpenAI()
  hook = createServer(async (req, res) => {
    let body = ''
    for await (const c of req) body += c
    alerts.push(JSON.parse(body))
    res.end('ok')
  })
  await new Promise<void>((r) => hook.listen(0, '127.0.0.1', () => r()))
  hookUrl = `http://127.0.0.1:${(hook.address() as { port: number }).port}/alert`
  gw = await startTestGateway({
    openaiUrl: fake.url,
    openaiKey: fake.apiKey,
    policies,
    config: {
      keys: [
        { key: TEAM_A_KEY, team: 'a', user: 'alice' },
        { key: TEAM_B_KEY, team: 'b', user: 'bob' },
        { key: KEY_C, team: 'c' },
        { key: KEY_D, team: 'd' },
        { key: KEY_E, team: 'e' }
      ],
      webhooks: { budget_alert_url: hookUrl }
    }
  })
})
afterAll(async () => {
  await gw?.close(0)
  await fake?.close()
  hook?.close()
})
beforeEach(() => {
  fake.script = undefined
})

const client = (key: string, maxRetries = 0) => new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: key, maxRetries })
const ask = (key: string, max_tokens: number, extra: Partial<OpenAI.ChatCompletionCreateParamsNonStreaming> = {}, retries = 0) =>
  client(key, retries).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello there' }], max_tokens, ...extra }).withResponse()
const budgets = async (key: string, query = '') => (await (await fetch(`${gw.url}/admin/budgets${query}`, { headers: { authorization: `Bearer ${key}` } })).json()) as any
const metric = async (name: string) => {
  const text = await gw.gateway.metrics.registry.metrics()
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0)
}
const ledgerTotal = async (team: string) => {
  await gw.gateway.ledger.flush()
  return (await gw.gateway.store.queryLedger({ team })).reduce((s, e) => s + e.cost_usd, 0)
}

describe('budgets through the gateway (openai SDK, real HTTP)', () => {
  it('refuses a request whose worst case does not fit, in OpenAI shape, and the SDK does not retry it', async () => {
    const before = await metric('sluice_budget_rejections_total')
    const served = fake.served.requests
    // 1000 output tokens of gpt-4o-mini may cost $0.0006: more than the $0.0002 cap
    const err = await refusal(ask(TEAM_A_KEY, 1000, {}, 2))
    expect(err.status).toBe(429)
    expect(err.code).toBe('budget_exceeded')
    expect(err.message).toMatch(/team "a" budget is \$0\.0002 per day \(UTC\), resets \d{4}-\d\d-\d\dT00:00:00\.000Z/)
    expect(errorHeader(err, 'x-should-retry')).toBe('false')
    expect(errorHeader(err, 'retry-after')).toBeNull()
    expect(await metric('sluice_budget_rejections_total')).toBe(before + 1)
    expect(fake.served.requests).toBe(served)
  })

  it('settles the actual cost, shows the tightest remaining budget, and lists it in /admin/budgets', async () => {
    const { data, response } = await ask(TEAM_A_KEY, 50)
    const cost = Number(response.headers.get('x-sluice-cost-usd'))
    expect(cost).toBeCloseTo((data.usage!.prompt_tokens * 0.15 + data.usage!.completion_tokens * 0.6) / 1e6, 12)
    const spent = await ledgerTotal('a')
    expect(Number(response.headers.get('x-sluice-budget-remaining-usd'))).toBeCloseTo(A_LIMIT - spent, 9)
    const view = await budgets(TEAM_A_KEY)
    expect(view.data).toEqual([
      expect.objectContaining({ team: 'a', scope: 'team', id: 'a', window: 'day', limit_usd: A_LIMIT, reserved_usd: 0, window_end: expect.stringMatching(/T00:00:00.000Z$/) })
    ])
    expect(view.data[0].spent_usd).toBeCloseTo(spent, 9)
    // a team key sees only its own team; the admin key sees all
    expect((await fetch(`${gw.url}/admin/budgets?team=c`, { headers: { authorization: `Bearer ${TEAM_A_KEY}` } })).status).toBe(403)
    const all = await budgets(ADMIN_KEY)
    expect(new Set(all.data.map((r: any) => r.team))).toEqual(new Set(['a', 'd', 'e']))
  })

  it('makes the output cap it reserved for explicit when the request set none', async () => {
    // without max_tokens the worst case is 4096 tokens (> the cap): refused, nothing sent upstream
    const err = await refusal(client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }))
    expect(err.code).toBe('budget_exceeded')
    // team d has only a shadow budget: no cap is imposed on its requests
    await client(KEY_D).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    expect(fake.requests.at(-1)!.body.max_tokens).toBeUndefined()
  })

  it('charges streams their real usage, and an abandoned stream what it used', async () => {
    const before = await ledgerTotal('a')
    const stream = await client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stream please' }], max_tokens: 50, stream: true })
    for await (const _ of stream) void _
    fake.script = () => ({ content: Array.from({ length: 30 }, (_, i) => `w${i}`).join(' '), completionTokens: 31, chunkDelayMs: 15 })
    const controller = new AbortController()
    const s2 = await client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'long one' }], max_tokens: 50, stream: true }, { signal: controller.signal })
    let n = 0
    await (async () => {
      for await (const _ of s2) if (++n === 4) controller.abort()
    })().catch(() => {})
    await waitFor(async () => (await gw.gateway.store.queryLedger({ team: 'a' })).some((e) => e.status === 'aborted'), () => gw.gateway.ledger.flush())
    const entries = await gw.gateway.store.queryLedger({ team: 'a' })
    const aborted = entries.find((e) => e.status === 'aborted')!
    expect(aborted.tokens.output).toBeGreaterThan(0)
    expect(entries.filter((e) => e.stream).every((e) => e.cost_usd > 0)).toBe(true)
    const after = await ledgerTotal('a')
    expect(after).toBeGreaterThan(before)
    await waitFor(async () => (await budgets(ADMIN_KEY, '?team=a')).data[0].reserved_usd === 0)
    expect((await budgets(ADMIN_KEY, '?team=a')).data[0].spent_usd).toBeCloseTo(after, 9)
  })

  it('downgrades to the named model when the asked one does not fit, and says so', async () => {
    const before = await metric('sluice_budget_downgrades_total')
    // gpt-4o with 100 output tokens may cost $0.001: over the key's $0.0005; gpt-4o-mini fits
    const { data, response } = await client(KEY_C).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], max_tokens: 100 }).withResponse()
    expect(data.choices[0]!.message.content).toBe('You said: hello')
    expect(fake.requests.at(-1)!.body.model).toBe('gpt-4o-mini')
    expect(response.headers.get('x-sluice-route')).toBe('gpt-4o-mini; downgraded-from=gpt-4o; budget=key/day')
    expect(await metric('sluice_budget_downgrades_total')).toBe(before + 1)
    // the downgraded model's own worst case must fit too
    const err = await refusal(client(KEY_C).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }], max_tokens: 1000 }))
    expect(err.code).toBe('budget_exceeded')
  })

  it('counts a shadow budget past its limit without refusing', async () => {
    for (let i = 0; i < 3; i++) await ask(KEY_D, 50)
    const [row] = (await budgets(KEY_D)).data
    expect(row).toMatchObject({ scope: 'team', shadow: true, limit_usd: 0.000001 })
    expect(row.spent_usd).toBeCloseTo(await ledgerTotal('d'), 9)
    expect(row.spent_usd).toBeGreaterThan(row.limit_usd)
    expect(await metric('sluice_budget_shadow_exceeded_total')).toBeGreaterThanOrEqual(3)
  })

  it('fires an alert threshold once per window, by webhook and metric', async () => {
    // each answer costs (prompt + 50 output tokens) ≈ $0.0000315 of the $0.0001 budget
    fake.script = (body) => ({ completionTokens: Math.min(50, body.max_tokens) })
    await ask(KEY_E, 60)
    await ask(KEY_E, 60)
    await ask(KEY_E, 5)
    await waitFor(() => alerts.length > 0)
    await new Promise((r) => setTimeout(r, 100))
    expect(alerts).toHaveLength(1)
    expect(alerts[0]).toMatchObject({ type: 'budget_alert', team: 'e', scope: 'team', id: 'e', window: 'month', threshold: 0.5, limit_usd: 0.0001 })
    expect(alerts[0].spent_usd).toBeGreaterThanOrEqual(0.00005)
    expect(await metric('sluice_budget_alerts_total')).toBe(1)
  })

  it('resets a budget (admin key only)', async () => {
    const forbidden = await fetch(`${gw.url}/admin/budgets/reset`, { method: 'POST', headers: { authorization: `Bearer ${KEY_E}` }, body: JSON.stringify({ team: 'e', scope: 'team' }) })
    expect(forbidden.status).toBe(403)
    const res = await fetch(`${gw.url}/admin/budgets/reset`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_KEY}` }, body: JSON.stringify({ team: 'e', scope: 'team' }) })
    expect(await res.json()).toMatchObject({ reset: 1 })
    expect((await budgets(ADMIN_KEY, '?team=e')).data[0].spent_usd).toBe(0)
  })

  it('applies a changed limit on config reload', async () => {
    expect((await refusal(ask(TEAM_A_KEY, 1000))).code).toBe('budget_exceeded')
    writeFileSync(join(gw.dir, 'a.yaml'), stringify({ budgets: [{ scope: 'team', limit_usd: 1, window: 'day' }] }))
    gw.gateway.reload(await loadConfig(gw.file, {}))
    const { response } = await ask(TEAM_A_KEY, 1000)
    expect(Number(response.headers.get('x-sluice-budget-remaining-usd'))).toBeGreaterThan(0.99)
    // with room for the default output cap, the cap it reserved for is sent upstream
    await client(TEAM_A_KEY).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    expect(fake.requests.at(-1)!.body.max_tokens).toBe(4096)
    // the spend so far was kept: only the limit changed
    expect((await budgets(ADMIN_KEY, '?team=a')).data[0].spent_usd).toBeCloseTo(await ledgerTotal('a'), 9)
  })
})

describe('calendar windows', () => {
  it('rolls a daily budget over at 00:00 UTC (injected clock)', async () => {
    let now = Date.UTC(2025, 2, 9, 23, 59, 0) // a Sunday
    const g = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      policies: { a: { budgets: [{ scope: 'team', limit_usd: 0.0001, window: 'day' }, { scope: 'key', limit_usd: 1, window: 'week' }] } },
      server: { steps: (rt) => [createAdmitStep({ config: rt.config, store: rt.store, registry: rt.metrics.registry, now: () => now })] }
    })
    try {
      const c = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 })
      const go = () => c.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: 100 })
      fake.script = () => ({ completionTokens: 100 })
      await go()
      expect(((await refusal(go())) as APIError).message).toMatch(/resets 2025-03-10T00:00:00.000Z/)
      now = Date.UTC(2025, 2, 10, 0, 0, 1)
      await go()
      const states = await g.gateway.store.readBudgets({ reservations: 'budget:{a}:res', index: 'budget:{a}:idx', now })
      const keys = states.map((s) => s.key).sort()
      // two day counters (Sunday, Monday) and two week counters (weeks start on Monday)
      expect(keys.filter((k) => k.includes(':day:'))).toEqual(['budget:{a}:c:team:day:2025-03-09:a', 'budget:{a}:c:team:day:2025-03-10:a'])
      expect(keys.filter((k) => k.includes(':week:')).map((k) => k.split(':')[5])).toEqual(['2025-03-03', '2025-03-10'])
    } finally {
      await g.close(0)
    }
  })
})

async function waitFor(cond: () => boolean | Promise<boolean>, tick?: () => Promise<unknown>, ms = 3000) {
  const deadline = Date.now() + ms
  for (;;) {
    await tick?.()
    if (await cond()) return
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('budgets and rate limits on route aliases', () => {
  // prices per million tokens; the judge is nearly free so its bounded-answer reservation leaves little slack
  const models = {
    cheap: { provider: 'openai', model: 'cheap-model', price: { input: 0.1, output: 0.2 } },
    strong: { provider: 'openai', model: 'strong-model', price: { input: 5, output: 15 } },
    flaky: { provider: 'openai', model: 'flaky-model', price: { input: 1, output: 1 } },
    judge: { provider: 'openai', model: 'judge-model', price: { input: 0.0001, output: 0.0001 } }
  }
  const CAP = 0.007
  const routing = {
    retry: { retries: 1, base_ms: 1, max_ms: 2 },
    breaker: false,
    routes: {
      smart: { cascade: [{ route: 'cheap', checks: { judge: { target: 'judge', min_score: 7 } } }, { route: { fallback: ['flaky', 'strong'] } }] },
      fb: { fallback: ['flaky', 'strong'] },
      // a route named like a model that sends the call elsewhere
      cheap: 'strong'
    }
  }
  const keys = { r1: 'sk-sluice-route-1-000000000000011', r2: 'sk-sluice-route-2-000000000000012', r3: 'sk-sluice-route-3-000000000000013', rl: 'sk-sluice-route-rl-00000000000014' }
  let g: TestGateway
  const rc = (team: keyof typeof keys) => new OpenAI({ baseURL: `${g.url}/v1`, apiKey: keys[team], maxRetries: 0 })
  const hello = [{ role: 'user' as const, content: 'hello' }]
  const cl100k = (body: any) => countPromptTokens({ messages: body.messages, tools: body.tools }, 'cl100k_base')
  /** Every call billed its worst case (prompt as tiktoken counts it, the whole output cap); the cheap tier is judged 2/10, flaky fails. */
  const worstUpstream = (body: any): FakeOpenAIReply => {
    const billed = { promptTokens: cl100k(body), completionTokens: body.max_tokens ?? body.max_completion_tokens }
    if (body.model === 'judge-model') return { ...billed, content: '2' }
    // non-streamed: a 500 (retried, billed nothing); streamed: a broken event before the first chunk (billed its prompt)
    if (body.model === 'flaky-model') return body.stream ? { raw: 'data: {not json\n\n' } : { error: { status: 500, message: 'flaky upstream' } }
    return billed
  }
  const mayCost = (err: APIError) => Number(/may cost up to \$(\d+\.\d+)/.exec(err.message)![1])
  const teamLedger = async (team: string) => {
    await g.gateway.ledger.flush()
    return g.gateway.store.queryLedger({ team })
  }
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0)
  const budgetRow = (team: string) => firstBudgetRow(g.url, team)

  beforeAll(async () => {
    g = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      policies: {
        r1: { budgets: [{ scope: 'team', limit_usd: CAP, window: 'total' }], routing },
        r2: { budgets: [{ scope: 'team', limit_usd: CAP, window: 'total' }], routing },
        r3: { budgets: [{ scope: 'team', limit_usd: 0.001, window: 'total' }], routing },
        rl: { rate_limits: [{ scope: 'key', rpm: 2 }], routing }
      },
      config: { models, keys: Object.entries(keys).map(([team, key]) => ({ key, team })) }
    })
  })
  afterAll(async () => {
    await g?.close(0)
  })

  it('reserves the whole cascade (every tier, the judge, retries) and refuses when it does not fit', async () => {
    const served = fake.served.requests
    // the largest output cap at which the strong model alone fits the cap, but not with the cheap tier before it
    const p = countPromptTokens({ messages: hello }, 'cl100k_base')
    const t = Math.floor((CAP * 1e6 - p * 5) / 15)
    const strong = (p * 5 + t * 15) / 1e6
    const tiers = strong + (p * 0.1 + t * 0.2) / 1e6
    expect(strong).toBeLessThanOrEqual(CAP)
    expect(tiers).toBeGreaterThan(CAP)
    const err = await refusal(rc('r1').chat.completions.create({ model: 'smart', messages: hello, max_tokens: t }))
    expect(err.code).toBe('budget_exceeded')
    expect(mayCost(err)).toBeGreaterThanOrEqual(Number(tiers.toFixed(6)))
    expect(fake.served.requests).toBe(served)
  })

  for (const [team, alias] of [['r1', 'smart'], ['r2', 'fb']] as const) {
    it(`never lets a burst through route "${alias}" spend past a small team cap (streams and not)`, async () => {
      fake.script = worstUpstream
      const client = rc(team)
      const outcomes = await Promise.allSettled(
        Array.from({ length: 24 }, async (_, i) => {
          if (i % 2 === 0) {
            const { data, response } = await client.chat.completions.create({ model: alias, messages: hello, max_tokens: 100 }).withResponse()
            expect(data.choices[0]!.message.content).toMatch(/You said/)
            return { id: response.headers.get('x-sluice-request-id')!, stream: false, cost: Number(response.headers.get('x-sluice-cost-usd')) }
          }
          const { data: stream, response } = await client.chat.completions.create({ model: alias, messages: hello, max_tokens: 100, stream: true }).withResponse()
          let text = ''
          for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
          expect(text).toMatch(/You said/)
          return { id: response.headers.get('x-sluice-request-id')!, stream: true, cost: NaN }
        })
      )
      const admitted = outcomes.filter((o) => o.status === 'fulfilled').map((o) => o.value)
      const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as APIError)
      expect(admitted.length).toBeGreaterThan(0)
      expect(refused.length).toBeGreaterThan(0)
      for (const r of refused) expect(r.code).toBe('budget_exceeded')

      // after the burst the budget is spent down: a refusal says what each kind of request may cost
      const worst = {
        json: mayCost(await refusal(client.chat.completions.create({ model: alias, messages: hello, max_tokens: 100 }))),
        stream: mayCost(await refusal(client.chat.completions.create({ model: alias, messages: hello, max_tokens: 100, stream: true })))
      }
      const entries = await teamLedger(team)
      for (const a of admitted) {
        const attempts = entries.filter((e) => e.request_id === a.id)
        // the route really made several calls: flaky failed (twice when retried), and (cascade) a rejected tier and a judge
        expect(attempts.length).toBe((alias === 'smart' ? 2 : 0) + (a.stream ? 2 : 3))
        if (a.stream) expect(attempts.find((e) => e.model === 'openai/flaky-model')!.cost_usd).toBeGreaterThan(0)
        const cost = sum(attempts.map((e) => e.cost_usd))
        if (!a.stream) expect(a.cost).toBeCloseTo(cost, 9)
        // what the request was charged, all attempts together, is within what it reserved
        expect(cost).toBeLessThanOrEqual((a.stream ? worst.stream : worst.json) + 1e-6)
      }
      const total = sum(entries.map((e) => e.cost_usd))
      expect(total).toBeLessThanOrEqual(CAP)
      await waitFor(async () => (await budgetRow(team)).reserved_usd === 0)
      expect((await budgetRow(team)).spent_usd).toBeCloseTo(total, 9)
    })
  }

  it('reserves a route named like a model at the price of where it sends the call', async () => {
    const served = fake.served.requests
    // the model "cheap" would cost $0.00002 at most; the route "cheap" goes to "strong" ($0.0015): over the $0.001 cap
    const err = await refusal(rc('r3').chat.completions.create({ model: 'cheap', messages: hello, max_tokens: 100 }))
    expect(err.code).toBe('budget_exceeded')
    expect(mayCost(err)).toBeGreaterThan(0.001)
    expect(fake.served.requests).toBe(served)
    await rc('r3').chat.completions.create({ model: 'cheap', messages: hello, max_tokens: 10 })
    expect(fake.requests.at(-1)!.body.model).toBe('strong-model')
  })

  it('applies rate limits to route aliases', async () => {
    const first = await rc('rl').chat.completions.create({ model: 'fb', messages: hello, max_tokens: 5 }).withResponse()
    expect(first.response.headers.get('x-ratelimit-limit-requests')).toBe('2')
    await rc('rl').chat.completions.create({ model: 'smart', messages: hello, max_tokens: 5 })
    const err = await refusal(rc('rl').chat.completions.create({ model: 'smart', messages: hello, max_tokens: 5 }))
    expect(err.status).toBe(429)
    expect(err.code).toBe('rate_limit_exceeded')
    expect(errorHeader(err, 'retry-after')).not.toBeNull()
  })
})

describe('embeddings go through admission and settlement', () => {
  // $100 per million input tokens: a short text costs about $0.0005
  const EMB_CAP = 0.003
  const keys = { em: 'sk-sluice-embed-0000000000000021', erl: 'sk-sluice-embed-rl-0000000000022' }
  let g: TestGateway
  const ec = (team: keyof typeof keys) => new OpenAI({ baseURL: `${g.url}/v1`, apiKey: keys[team], maxRetries: 0 })
  const promMetric = async (name: string, labels: string[]) => {
    const text = await g.gateway.metrics.registry.metrics()
    return text.split('\n').filter((l) => l.startsWith(name) && labels.every((x) => l.includes(x))).reduce((s, l) => s + Number(l.split(' ').at(-1)), 0)
  }
  const budgetRow = (team: string) => firstBudgetRow(g.url, team)

  beforeAll(async () => {
    g = await startTestGateway({
      openaiUrl: fake.url,
      openaiKey: fake.apiKey,
      policies: {
        em: { budgets: [{ scope: 'team', limit_usd: EMB_CAP, window: 'total' }] },
        erl: { rate_limits: [{ scope: 'key', rpm: 1 }] }
      },
      config: {
        models: { 'dear-embed': { provider: 'openai', model: 'text-embedding-3-small', type: 'embedding', price: { input: 100, output: 0 } } },
        keys: Object.entries(keys).map(([team, key]) => ({ key, team }))
      }
    })
  })
  afterAll(async () => {
    await g?.close(0)
  })

  it('charges the budget and the session, records tags, user and agent, and returns the cost headers', async () => {
    const tokensBefore = await promMetric('sluice_tokens_total', ['team="em"', 'kind="input"'])
    const { data, response } = await ec('em')
      .embeddings.create({ model: 'dear-embed', input: ['the quick brown fox', 'jumps over'], user: 'end-user-7' }, { headers: { 'x-sluice-session': 'emb-session', 'x-sluice-tags': 'rag,nightly', 'x-sluice-agent': 'indexer' } })
      .withResponse()
    expect(data.data).toHaveLength(2)
    const cost = Number(response.headers.get('x-sluice-cost-usd'))
    expect(cost).toBeCloseTo((data.usage.prompt_tokens * 100) / 1e6, 12)
    expect(Number(response.headers.get('x-sluice-session-cost-usd'))).toBeCloseTo(cost, 12)
    expect(Number(response.headers.get('x-sluice-budget-remaining-usd'))).toBeCloseTo(EMB_CAP - cost, 9)
    const id = response.headers.get('x-sluice-request-id')
    await g.gateway.ledger.flush()
    const [entry] = (await g.gateway.store.queryLedger({ team: 'em' })).filter((e) => e.request_id === id)
    expect(entry).toMatchObject({ surface: 'embeddings', status: 'ok', user: 'end-user-7', agent: 'indexer', session: 'emb-session', tags: ['rag', 'nightly'], cost_usd: cost, http_status: 200 })
    expect(await g.gateway.ledger.sessionCost('em', 'emb-session')).toBeCloseTo(cost, 12)
    const row = await budgetRow('em')
    expect(row.spent_usd).toBeCloseTo(cost, 9)
    expect(row.reserved_usd).toBe(0)
    expect(await promMetric('sluice_tokens_total', ['team="em"', 'kind="input"'])).toBe(tokensBefore + data.usage.prompt_tokens)
    expect(await promMetric('sluice_requests_total', ['team="em"', 'status="200"'])).toBeGreaterThanOrEqual(1)
  })

  it('refuses with 429 budget_exceeded once the cap is spent, without calling upstream', async () => {
    const input = 'lorem ipsum dolor sit amet consectetur adipiscing elit'
    let err: APIError | undefined
    for (let i = 0; i < 20 && !err; i++) {
      const served = fake.requests.length
      try {
        await ec('em').embeddings.create({ model: 'dear-embed', input })
      } catch (e) {
        err = e as APIError
        expect(fake.requests.length).toBe(served)
      }
    }
    expect(err?.status).toBe(429)
    expect(err?.code).toBe('budget_exceeded')
    expect(err?.message).toMatch(/team "em" budget is \$0\.003 in total/)
    expect(errorHeader(err!, 'x-should-retry')).toBe('false')
    await g.gateway.ledger.flush()
    const spent = (await g.gateway.store.queryLedger({ team: 'em' })).reduce((s, e) => s + e.cost_usd, 0)
    expect(spent).toBeLessThanOrEqual(EMB_CAP)
    expect((await budgetRow('em')).spent_usd).toBeCloseTo(spent, 9)
    expect(await promMetric('sluice_requests_total', ['team="em"', 'status="429"'])).toBe(1)
  })

  it('applies rate limits to embeddings', async () => {
    const first = await ec('erl').embeddings.create({ model: 'dear-embed', input: 'one' }).withResponse()
    expect(first.response.headers.get('x-ratelimit-limit-requests')).toBe('1')
    const err = await refusal(ec('erl').embeddings.create({ model: 'dear-embed', input: 'two' }))
    expect(err.status).toBe(429)
    expect(err.code).toBe('rate_limit_exceeded')
  })
})

describe('budgets reserve for the injection classifier', () => {
  // the classifier model is dearer than the main one, so its calls weigh in the reservation
  const models = {
    main: { provider: 'openai', model: 'main-model', price: { input: 1, output: 1 } },
    classy: { provider: 'openai', model: 'classy-model', price: { input: 2, output: 4 } }
  }
  const classifier = { model: 'classy', max_calls: 2, timeout_ms: 3000 }
  const SMALL = 0.002
  const CAP = 0.004
  const keys = { k0: 'sk-sluice-classy-0-00000000000031', k1: 'sk-sluice-classy-1-00000000000032', k2: 'sk-sluice-classy-2-00000000000033', k3: 'sk-sluice-classy-3-00000000000034' }
  const PAGE = 'Opening hours: 9 to 5, closed on Sundays.'
  const TPM = countPromptTokens({ messages: toolTurnOf(PAGE) as any }, 'cl100k_base') + 100
  const policies = {
    k0: { budgets: [{ scope: 'team', limit_usd: SMALL, window: 'total' }] },
    k1: { budgets: [{ scope: 'team', limit_usd: SMALL, window: 'total' }], guardrails: { input: { injection: { classifier } } } },
    // e-mails become [EMAIL_n] placeholders before the classifier reads the text: longer than `a@b.io`
    k2: { budgets: [{ scope: 'team', limit_usd: CAP, window: 'total' }], guardrails: { input: { pii: { action: 'redact', types: ['email'] }, injection: { classifier } } } },
    // room for the main call's prompt and 100 output tokens, not for a classifier call too
    k3: { rate_limits: [{ scope: 'key', tpm: TPM }], guardrails: { input: { injection: { classifier } } } }
  }
  let g: TestGateway
  /** Request id → what admission reserved for it (USD), read at the store. */
  const reserved = new Map<string, number>()
  const kc = (team: keyof typeof keys) => new OpenAI({ baseURL: `${g.url}/v1`, apiKey: keys[team], maxRetries: 0 })
  const cl100k = (body: any) => countPromptTokens({ messages: body.messages, tools: body.tools }, 'cl100k_base')
  const isClassifierCall = (body: any) => body?.messages?.[0]?.content === CLASSIFIER_PROMPT
  /** Every call billed its worst case: the prompt as tiktoken counts it and the whole output cap; the classifier says SAFE. */
  const worstUpstream = (body: any): FakeOpenAIReply => {
    const billed = { promptTokens: cl100k(body), completionTokens: body.max_tokens ?? body.max_completion_tokens }
    return isClassifierCall(body) ? { ...billed, content: 'SAFE' } : billed
  }
  const toolTurn = toolTurnOf
  const mayCost = (err: APIError) => Number(/may cost up to \$(\d+\.\d+)/.exec(err.message)![1])
  const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0)

  beforeAll(async () => {
    g = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, policies, config: { models, keys: Object.entries(keys).map(([team, key]) => ({ key, team })) } })
    const store = g.gateway.store
    const reserve = store.reserveBudget.bind(store)
    store.reserveBudget = async (req) => {
      const res = await reserve(req)
      if (res.ok) reserved.set(req.id, req.amountNanos / 1e9)
      return res
    }
  })
  afterAll(async () => {
    await g?.close(0)
  })

  it('refuses a request with untrusted tool content when route + classifier worst case does not fit, though the route alone would', async () => {
    fake.script = worstUpstream
    const messages = toolTurn(PAGE)
    // main-model costs $1/M in and out: the largest output cap at which the route alone fits the cap
    const p = countPromptTokens({ messages: messages as any }, 'cl100k_base')
    const t = Math.floor(SMALL * 1e6 - p)
    const route = (p + t) / 1e6
    const resolved = Object.fromEntries(Object.entries(models).map(([n, m]) => [n, { ...m, type: 'chat' }])) as unknown as Record<string, ResolvedModel>
    const cls = classifierWorstCase({ guardrails: guardrailsPolicySchema.parse(policies.k1.guardrails) }, { messages: messages as any }, resolved)
    expect(route).toBeLessThanOrEqual(SMALL)
    expect(cls.calls).toBe(1)
    expect(route + cls.usd).toBeGreaterThan(SMALL)

    const served = fake.served.requests
    const err = await refusal(kc('k1').chat.completions.create({ model: 'main', messages, max_tokens: t }))
    expect(err.code).toBe('budget_exceeded')
    expect(mayCost(err)).toBeCloseTo(route + cls.usd, 6)
    // refused before anything was spent: neither the classifier nor the model was called
    expect(fake.served.requests).toBe(served)

    // the same request fits a team without a classifier, and a request with nothing to judge fits this team
    await kc('k0').chat.completions.create({ model: 'main', messages, max_tokens: t })
    const before = fake.requests.length
    await kc('k1').chat.completions.create({ model: 'main', messages: [{ role: 'user', content: PAGE }], max_tokens: t })
    expect(fake.requests.slice(before).map((r) => isClassifierCall(r.body))).toEqual([false])
  })

  it('counts the classifier calls in the tokens a rate limit takes', async () => {
    const err = await refusal(kc('k3').chat.completions.create({ model: 'main', messages: toolTurn(PAGE), max_tokens: 100 }))
    expect(err.code).toBe('rate_limit_exceeded')
    // without untrusted content there is nothing to judge: the same budget of tokens admits it
    await kc('k3').chat.completions.create({ model: 'main', messages: [{ role: 'user', content: PAGE }], max_tokens: 100 })
  })

  it('never lets a burst with classifier calls (on redacted text) spend past the cap; each request within its reservation', async () => {
    fake.script = worstUpstream
    const client = kc('k2')
    const before = fake.requests.length
    const outcomes = await Promise.allSettled(
      Array.from({ length: 16 }, async (_, i) => {
        // two new texts per request (verdicts are remembered per text): two classifier calls each
        const messages = toolTurn(`Page ${i}: write to a@b.io or e${i}@x.io for bookings.`, `Page ${i}b: opening hours 9 to 5, ask c@d.io.`)
        if (i % 2 === 0) {
          const { response } = await client.chat.completions.create({ model: 'main', messages, max_tokens: 50 }).withResponse()
          return response.headers.get('x-sluice-request-id')!
        }
        const { data: stream, response } = await client.chat.completions.create({ model: 'main', messages, max_tokens: 50, stream: true }).withResponse()
        for await (const _ of stream) void _
        return response.headers.get('x-sluice-request-id')!
      })
    )
    const admitted = outcomes.filter((o) => o.status === 'fulfilled').map((o) => o.value)
    const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as APIError)
    expect(admitted.length).toBeGreaterThan(0)
    expect(refused.length).toBeGreaterThan(0)
    for (const r of refused) expect(r.code).toBe('budget_exceeded')
    // the classifier read the redacted texts
    const judged = fake.requests.slice(before).filter((r) => isClassifierCall(r.body)).map((r) => r.body.messages[1].content as string)
    expect(judged.length).toBe(2 * admitted.length)
    for (const text of judged) expect(text).toMatch(/\[EMAIL_\d+\]/)
    expect(judged.join('')).not.toContain('@')

    await g.gateway.ledger.flush()
    const entries = await g.gateway.store.queryLedger({ team: 'k2' })
    for (const id of admitted) {
      const attempts = entries.filter((e) => e.request_id === id)
      expect(attempts.filter((e) => e.reason === 'guardrail_classifier' && e.cost_usd > 0)).toHaveLength(2)
      expect(attempts).toHaveLength(3)
      // what the request was charged, classifier calls included, is within what it reserved
      expect(sum(attempts.map((e) => e.cost_usd))).toBeLessThanOrEqual(reserved.get(id)! + 1e-12)
    }
    expect(sum(entries.map((e) => e.cost_usd))).toBeLessThanOrEqual(CAP)
  })
})

function toolTurnOf(...pages: string[]): OpenAI.ChatCompletionMessageParam[] {
  return [
    { role: 'user', content: 'summarise these pages' },
    { role: 'assistant', content: null, tool_calls: pages.map((_, i) => ({ id: `call_${i}`, type: 'function' as const, function: { name: 'fetch_page', arguments: `{"n":${i}}` } })) },
    ...pages.map((content, i) => ({ role: 'tool' as const, tool_call_id: `call_${i}`, content }))
  ]
}

/** The first row of /admin/budgets for a team, read with the admin key. */
async function firstBudgetRow(url: string, team: string): Promise<any> {
  return ((await (await fetch(`${url}/admin/budgets?team=${team}`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json()) as any).data[0]
}
