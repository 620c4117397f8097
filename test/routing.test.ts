import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { startTestGateway } from './helpers/gateway.js'
import { startRoutingGateway, user } from './helpers/routing.js'

let fake: FakeOpenAI
let env: Awaited<ReturnType<typeof startRoutingGateway>>

const routing = {
  retry: { retries: 0 },
  breaker: false,
  targets: { strong: { timeouts: { first_byte_ms: 150 } } },
  routes: {
    chain: { fallback: ['cheap', 'strong', 'mid'] },
    'rl-only': { fallback: ['cheap', 'strong'], on: ['rate_limit'] },
    'dead-first': { fallback: ['dead', 'cheap'] },
    'ctx-chain': { fallback: ['small', 'big'] },
    weighted: { loadbalance: [{ route: 'cheap', weight: 3 }, { route: 'mid', weight: 1 }] },
    'least-out': { loadbalance: [{ route: 'cheap' }, { route: 'mid' }], by: 'least_outstanding' },
    'least-lat': { loadbalance: [{ route: 'judge' }, { route: 'big' }], by: 'least_latency' },
    rules: {
      conditional: [
        { when: { has_tools: true }, route: 'strong' },
        { when: { tags: ['vip'] }, route: 'mid' },
        { when: { message_regex: '\\b(prove|theorem)\\b' }, route: 'strong' },
        { when: { json_mode: true }, route: 'mid' },
        { when: { has_images: true }, route: 'strong' },
        { when: { min_prompt_tokens: 200 }, route: 'big' },
        { when: { user: 'alice', team: 'a', message_regex: 'alice-only' }, route: 'mid' }
      ],
      default: 'cheap'
    },
    nested: { conditional: [{ when: { tags: ['ha'] }, route: { fallback: ['dead', { loadbalance: [{ route: 'mid' }] }] } }], default: 'cheap' }
  }
}

beforeAll(async () => {
  fake = await startFakeOpenAI()
  env = await startRoutingGateway(fake, routing)
})
afterAll(async () => {
  await env.gw.close(0)
  await fake.close()
})
beforeEach(() => {
  fake.script = undefined
})

const failWith = (model: string, reply: Parameters<NonNullable<FakeOpenAI['script']>>[0] extends never ? never : object) => (body: any) => (body.model === model ? reply : undefined)

describe('fallback', () => {
  const cases: [string, object, string][] = [
    ['a 5xx', { error: { status: 503, message: 'overloaded', type: 'server_error' } }, 'error'],
    ['a rate limit', { error: { status: 429, message: 'slow down', type: 'rate_limit_error', headers: { 'retry-after': '20' } } }, 'rate_limit'],
    ['a context-length error', { error: { status: 400, message: "This model's maximum context length is 8192 tokens.", code: 'context_length_exceeded' } }, 'context_length'],
    ['an upstream that sends invalid JSON', { raw: '{not json' }, 'error']
  ]
  for (const [name, reply, kind] of cases) {
    it(`moves to the next target on ${name}, and the ledger has both attempts`, async () => {
      fake.script = failWith('cheap-model', reply)
      const { data, response } = await env.client.chat.completions.create({ model: 'chain', messages: user('hi') }).withResponse()
      expect(data.choices[0]!.message.content).toBe('You said: hi')
      expect(response.headers.get('x-sluice-route')).toBe('strong')
      expect(response.headers.get('x-sluice-attempts')).toBe('2')
      const entries = await env.attemptsOf(response.headers.get('x-sluice-request-id'))
      expect(entries.map((e) => [e.model, e.status])).toEqual([
        ['openai/cheap-model', 'error'],
        ['openai/strong-model', 'ok']
      ])
      expect(entries[1]!.reason).toContain(`fallback 1 after ${kind}`)
      expect(entries.every((e) => e.alias === 'chain')).toBe(true)
    })
  }

  it('moves on after a per-target first-byte timeout', async () => {
    // undici's timers are coarse (about half a second) below a second: make the gap unmistakable
    fake.script = (body) => (body.model === 'strong-model' ? { delayMs: 4000 } : body.model === 'cheap-model' ? { error: { status: 500, message: 'boom' } } : undefined)
    const started = Date.now()
    const { response } = await env.client.chat.completions.create({ model: 'chain', messages: user('hi') }).withResponse()
    expect(response.headers.get('x-sluice-route')).toBe('mid')
    expect(Date.now() - started).toBeLessThan(2500)
    const entries = await env.attemptsOf(response.headers.get('x-sluice-request-id'))
    expect(entries.map((e) => e.status)).toEqual(['error', 'error', 'ok'])
    expect(entries[1]!.http_status).toBe(504)
    expect(entries[2]!.reason).toContain('after timeout')
  })

  it('moves on when a target cannot be reached', async () => {
    const { response } = await env.client.chat.completions.create({ model: 'dead-first', messages: user('hi') }).withResponse()
    expect(response.headers.get('x-sluice-route')).toBe('cheap')
    const entries = await env.attemptsOf(response.headers.get('x-sluice-request-id'))
    expect(entries.map((e) => [e.provider, e.status])).toEqual([
      ['dead', 'error'],
      ['openai', 'ok']
    ])
  })

  it('only moves on for the failure kinds listed in `on`', async () => {
    fake.script = failWith('cheap-model', { error: { status: 503, message: 'overloaded' } })
    const err: any = await env.client.chat.completions.create({ model: 'rl-only', messages: user('hi') }).catch((e) => e)
    expect(err.status).toBe(503)
    fake.script = failWith('cheap-model', { error: { status: 429, message: 'slow down' } })
    const { response } = await env.client.chat.completions.create({ model: 'rl-only', messages: user('hi') }).withResponse()
    expect(response.headers.get('x-sluice-route')).toBe('strong')
  })

  it('does not fall back on a bad request', async () => {
    fake.script = failWith('cheap-model', { error: { status: 400, message: 'bad temperature', param: 'temperature' } })
    const err: any = await env.client.chat.completions.create({ model: 'chain', messages: user('hi') }).catch((e) => e)
    expect(err.status).toBe(400)
    expect(fake.requests.at(-1)!.body.model).toBe('cheap-model')
  })

  it('skips a target whose context window cannot hold the prompt, without calling it', async () => {
    const before = fake.requests.length
    const { response } = await env.client.chat.completions.create({ model: 'ctx-chain', messages: user('word '.repeat(200)) }).withResponse()
    expect(response.headers.get('x-sluice-route')).toBe('big')
    expect(fake.requests.slice(before).map((r) => r.body.model)).toEqual(['big-context-model'])
  })

  it('a stream that fails before its first chunk falls back; the client sees only the answer', async () => {
    fake.script = (body) => (body.model === 'cheap-model' ? { resetAfterChunks: 0 } : undefined)
    const { data: stream, response } = await env.client.chat.completions.create({ model: 'chain', messages: user('one two'), stream: true }).withResponse()
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
    expect(text).toBe('You said: one two')
    expect(response.headers.get('x-sluice-route')).toBe('strong')
    const entries = await env.attemptsOf(response.headers.get('x-sluice-request-id'))
    expect(entries.map((e) => [e.model, e.status])).toEqual([
      ['openai/cheap-model', 'error'],
      ['openai/strong-model', 'ok']
    ])
  })

  it('a stream that fails after its first chunk cannot fall back and ends with an error event', async () => {
    fake.script = (body) => (body.model === 'cheap-model' ? { content: 'a b c d e f', resetAfterChunks: 3, chunkDelayMs: 10 } : undefined)
    const stream = await env.client.chat.completions.create({ model: 'chain', messages: user('x'), stream: true })
    let text = ''
    const err: any = await (async () => {
      for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
    })().catch((e) => e)
    expect(text).toBe('a b ')
    expect(err).toBeInstanceOf(Error)
    expect(String(err.message)).toMatch(/connection|upstream/i)
    expect(fake.requests.at(-1)!.body.model).toBe('cheap-model')
  })
})

describe('load balancing', () => {
  it('splits by weight', async () => {
    const counts: Record<string, number> = {}
    for (let i = 0; i < 200; i++) {
      const { response } = await env.client.chat.completions.create({ model: 'weighted', messages: user('hi') }).withResponse()
      const t = response.headers.get('x-sluice-route')!
      counts[t] = (counts[t] ?? 0) + 1
    }
    // 3:1 → 150 expected; a binomial sd is ~6
    expect(counts.cheap).toBeGreaterThan(125)
    expect(counts.cheap).toBeLessThan(175)
    expect(counts.cheap! + counts.mid!).toBe(200)
  })

  it('least-outstanding spreads concurrent requests evenly', async () => {
    fake.script = () => ({ delayMs: 150 })
    const res = await Promise.all(Array.from({ length: 10 }, () => env.client.chat.completions.create({ model: 'least-out', messages: user('hi') }).withResponse()))
    const counts = res.map((r) => r.response.headers.get('x-sluice-route')).reduce<Record<string, number>>((m, t) => ((m[t!] = (m[t!] ?? 0) + 1), m), {})
    expect(counts).toEqual({ cheap: 5, mid: 5 })
  })

  it('least-latency prefers the faster member once both are measured', async () => {
    fake.script = (body) => (body.model === 'big-context-model' ? { delayMs: 80 } : undefined)
    const counts: Record<string, number> = {}
    for (let i = 0; i < 12; i++) {
      const { response } = await env.client.chat.completions.create({ model: 'least-lat', messages: user('hi') }).withResponse()
      const t = response.headers.get('x-sluice-route')!
      counts[t] = (counts[t] ?? 0) + 1
    }
    // both are tried once to be measured, then the fast one wins
    expect(counts).toEqual({ judge: 11, big: 1 })
  })

  it('moves to another member when the chosen one fails', async () => {
    fake.script = failWith('cheap-model', { error: { status: 502, message: 'bad gateway' } })
    for (let i = 0; i < 6; i++) {
      const { response } = await env.client.chat.completions.create({ model: 'weighted', messages: user('hi') }).withResponse()
      expect(response.headers.get('x-sluice-route')).toBe('mid')
    }
  })
})

describe('conditional rules', () => {
  const routeOf = async (body: any, headers: Record<string, string> = {}) => {
    const { response } = await env.client.chat.completions.create({ model: 'rules', ...body }, { headers }).withResponse()
    return response.headers.get('x-sluice-route')
  }
  const tool = { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }

  it('routes on tools, tags, regex, json mode, prompt size, images and user', async () => {
    expect(await routeOf({ messages: user('hello') })).toBe('cheap')
    expect(await routeOf({ messages: user('weather?'), tools: [tool] })).toBe('strong')
    expect(await routeOf({ messages: user('hello') }, { 'x-sluice-tags': 'beta,vip' })).toBe('mid')
    expect(await routeOf({ messages: user('Prove the theorem of Pythagoras') })).toBe('strong')
    expect(await routeOf({ messages: user('improve this') })).toBe('cheap')
    expect(await routeOf({ messages: user('give json'), response_format: { type: 'json_object' } })).toBe('mid')
    expect(await routeOf({ messages: user('lorem ipsum '.repeat(150)) })).toBe('big')
    expect(await routeOf({ messages: [{ role: 'user', content: [{ type: 'text', text: 'what is this' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }] })).toBe('strong')
    // team a's key belongs to alice
    expect(await routeOf({ messages: user('alice-only please') })).toBe('mid')
  })

  it('nests strategies: a rule whose route is a fallback over a load balancer', async () => {
    const { response } = await env.client.chat.completions.create({ model: 'nested', messages: user('x') }, { headers: { 'x-sluice-tags': 'ha' } }).withResponse()
    expect(response.headers.get('x-sluice-route')).toBe('mid')
    expect(response.headers.get('x-sluice-attempts')).toBe('2')
  })
})

describe('route aliases', () => {
  it('appear in /v1/models of the team that defines them, and only there', async () => {
    const a = (await env.client.models.list()).data.map((m) => m.id)
    expect(a).toEqual(expect.arrayContaining(['chain', 'weighted', 'rules', 'cheap', 'strong']))
    const b = (await env.clientB.models.list()).data.map((m) => m.id)
    expect(b).not.toContain('chain')
    const err: any = await env.clientB.chat.completions.create({ model: 'chain', messages: user('hi') }).catch((e) => e)
    expect(err.status).toBe(404)
  })

  it('records routing decisions and fallbacks in metrics', async () => {
    const text = await (await fetch(`${env.gw.url}/metrics`)).text()
    expect(text).toMatch(/sluice_routing_decisions_total\{alias="chain",target="strong",reason="fallback"\} \d+/)
    expect(text).toMatch(/sluice_fallbacks_total\{alias="chain",target="cheap",kind="rate_limit"\} \d+/)
  })

  it('a route naming an unknown model is a config error naming the policy file and path', async () => {
    const err = await startTestGateway({ policies: { a: { routing: { routes: { smart: { fallback: ['gpt-4o', 'gpt-9'] } } } } } }).catch((e) => e)
    expect(String(err.message)).toMatch(/a\.yaml: at routing\.routes\.smart\.fallback\.1: model "gpt-9" is not defined\. Fix:/)
  })

  it('an invalid regex or strategy shape is rejected at load', async () => {
    const bad = await startTestGateway({ policies: { a: { routing: { routes: { r: { conditional: [{ when: { message_regex: '(' }, route: 'gpt-4o' }] } } } } } }).catch((e) => e)
    expect(String(bad.message)).toMatch(/a\.yaml: invalid config/)
  })
})
