import OpenAI from 'openai'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { FakeOpenAI } from './fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, TEAM_B_KEY, type TestGateway } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'

let stack: Stack
let fake: FakeOpenAI
let gw: TestGateway
let client: OpenAI

beforeAll(async () => {
  ;({ fake, gw, client } = stack = await startStack())
})
afterAll(() => stack?.close())
beforeEach(() => stack.reset())

const flush = () => gw.gateway.ledger.flush()

describe('POST /v1/chat/completions through the openai SDK', () => {
  it('answers non-streaming with cost headers and passes every parameter through', async () => {
    const { data, response } = await client.chat.completions
      .create(
        {
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'hello there' }],
          temperature: 0,
          seed: 7,
          stop: ['\n\n'],
          max_completion_tokens: 50,
          logprobs: true,
          top_logprobs: 2,
          n: 1,
          metadata: { purpose: 'test' },
          user: 'end-user-9',
          // an unknown field must reach OpenAI-compatible targets untouched
          ...({ vendor_extension: { x: 1 } } as object)
        },
        { headers: { 'x-sluice-session': 'sess-1', 'x-sluice-agent': 'planner', 'x-sluice-tags': 'exp-1,beta' } }
      )
      .withResponse()
    expect(data.choices[0]!.message.content).toBe('You said: hello there')
    expect(data.usage!.prompt_tokens).toBeGreaterThan(0)
    const sent = fake.requests.at(-1)!.body
    expect(sent).toMatchObject({ model: 'gpt-4o-mini', temperature: 0, seed: 7, stop: ['\n\n'], max_completion_tokens: 50, logprobs: true, top_logprobs: 2, metadata: { purpose: 'test' }, user: 'end-user-9', vendor_extension: { x: 1 } })
    expect(response.headers.get('x-sluice-request-id')).toMatch(/^[0-9a-f-]{36}$/)
    const cost = Number(response.headers.get('x-sluice-cost-usd'))
    const expected = (data.usage!.prompt_tokens * 0.15 + data.usage!.completion_tokens * 0.6) / 1e6
    expect(cost).toBeCloseTo(expected, 12)
    expect(Number(response.headers.get('x-sluice-session-cost-usd'))).toBeCloseTo(expected, 12)
    expect(response.headers.get('x-sluice-route')).toBe('gpt-4o-mini')
  })

  it('streams chunks and strips the usage chunk the client did not ask for', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'one two three' }], stream: true })
    let text = ''
    let sawUsage = false
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? ''
      if (chunk.usage) sawUsage = true
    }
    expect(text).toBe('You said: one two three')
    expect(sawUsage).toBe(false)
    // the gateway asked upstream for usage anyway, so the stream is charged its real usage
    expect(fake.requests.at(-1)!.body.stream_options).toEqual({ include_usage: true })
    await flush()
    const entries = await gw.gateway.store.queryLedger({ team: 'a' })
    const last = entries.at(-1)!
    expect(last.stream).toBe(true)
    expect(last.estimated).toBe(false)
    expect(last.cost_usd).toBeGreaterThan(0)
  })

  it('gives the usage chunk, with the cost, to a client that asked', async () => {
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count me' }], stream: true, stream_options: { include_usage: true } })
    let usage: any
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage
    expect(usage.prompt_tokens).toBeGreaterThan(0)
    expect(usage.sluice_cost_usd).toBeCloseTo((usage.prompt_tokens * 0.15 + usage.completion_tokens * 0.6) / 1e6, 12)
  })

  it('streams tool calls whose arguments reassemble into JSON', async () => {
    fake.script = () => ({ toolCalls: [{ name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' }] })
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }]
    const stream = client.chat.completions.stream({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'weather in Paris?' }], tools, tool_choice: 'auto', parallel_tool_calls: false })
    const final = await stream.finalChatCompletion()
    const call = final.choices[0]!.message.tool_calls![0]! as any
    expect(call.function.name).toBe('get_weather')
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris', unit: 'c' })
    expect(final.choices[0]!.finish_reason).toBe('tool_calls')
    expect(fake.requests.at(-1)!.body).toMatchObject({ tool_choice: 'auto', parallel_tool_calls: false, tools })
  })

  it('passes json_schema response_format through', async () => {
    const response_format = { type: 'json_schema' as const, json_schema: { name: 'answer', schema: { type: 'object', properties: { answer: { type: 'number' } } }, strict: true } }
    const res = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'json please' }], response_format })
    expect(JSON.parse(res.choices[0]!.message.content!)).toEqual({ answer: 42 })
    expect(fake.requests.at(-1)!.body.response_format).toEqual(response_format)
  })

  it('charges a stream the client abandons mid-way, and aborts the upstream', async () => {
    fake.script = () => ({ content: Array.from({ length: 40 }, (_, i) => `w${i}`).join(' '), chunkDelayMs: 20 })
    const controller = new AbortController()
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'long answer' }], stream: true }, { signal: controller.signal, headers: { 'x-sluice-session': 'abort-sess' } })
    let n = 0
    await (async () => {
      for await (const _ of stream) if (++n === 5) controller.abort()
    })().catch(() => {})
    expect(n).toBeLessThan(20)
    await waitFor(() => fake.requests.at(-1)!.aborted)
    await waitFor(async () => (await gw.gateway.store.queryLedger({ session: "abort-sess" })).length === 1, 10_000, flush)
    const [entry] = await gw.gateway.store.queryLedger({ session: 'abort-sess' })
    expect(entry!.status).toBe('aborted')
    expect(entry!.estimated).toBe(true)
    expect(entry!.tokens.input).toBeGreaterThan(0)
    expect(entry!.tokens.output).toBeGreaterThan(0)
    expect(entry!.cost_usd).toBeGreaterThan(0)
  })
})

describe('errors in OpenAI shape', () => {
  it('401 for a bad key', async () => {
    const bad = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'sk-wrong-key-123456', maxRetries: 0 })
    const err: any = await bad.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e)
    expect(err.status).toBe(401)
    expect(err.code).toBe('invalid_api_key')
  })

  it('404 for an unknown model', async () => {
    const err: any = await client.chat.completions.create({ model: 'gpt-9', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e)
    expect(err.status).toBe(404)
    expect(err.code).toBe('model_not_found')
  })

  it('400 for malformed JSON and wrong types, naming the field', async () => {
    const post = (body: string, type = 'application/json') => fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': type }, body })
    let res = await post('{"model":')
    expect(res.status).toBe(400)
    expect(res.headers.get('content-type')).toMatch(/application\/json/)
    expect((await res.json()).error.code).toBe('invalid_json')
    res = await post(JSON.stringify({ model: 'gpt-4o-mini', messages: 'hi' }))
    expect(res.status).toBe(400)
    const body = await res.json()
    expect(body.error).toMatchObject({ type: 'invalid_request_error', param: 'messages' })
    res = await post(JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }))
    expect((await res.json()).error.param).toBe('temperature')
    res = await post('model=x', 'application/x-www-form-urlencoded')
    expect(res.status).toBe(415)
  })

  it('413 for an oversize body', async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(5 * 1024 * 1024) }] })
    })
    expect(res.status).toBe(413)
    expect((await res.json()).error.code).toBe('request_too_large')
  })

  it('passes upstream errors on with their status and message', async () => {
    fake.script = () => ({ error: { status: 400, message: "This model's maximum context length is 128000 tokens.", code: 'context_length_exceeded' } })
    const err: any = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }).catch((e) => e)
    expect(err.status).toBe(400)
    expect(err.message).toMatch(/maximum context length/)
    expect(err.code).toBe('context_length_exceeded')
  })

  it('a stream that fails mid-way ends with an error event the SDK raises', async () => {
    fake.script = () => ({ content: 'a b c d e f', resetAfterChunks: 3, chunkDelayMs: 20 })
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: true })
    const err: any = await (async () => {
      for await (const _ of stream) {
      }
    })().catch((e) => e)
    expect(err).toBeInstanceOf(Error)
    expect(String(err.message)).toMatch(/connection|upstream/i)
  })

  it('unknown routes are 404 in OpenAI shape', async () => {
    const res = await fetch(`${gw.url}/v1/nope`)
    expect(res.status).toBe(404)
    expect((await res.json()).error.code).toBe('unknown_route')
  })
})

describe('embeddings and models', () => {
  it('float and base64 (the SDK default) decode to the same vector', async () => {
    const viaSdk = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' })
    const floats = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['hello', 'world'], encoding_format: 'float' })
    expect(viaSdk.data[0]!.embedding).toHaveLength(8)
    expect(floats.data).toHaveLength(2)
    viaSdk.data[0]!.embedding.forEach((v, i) => expect(v).toBeCloseTo(floats.data[0]!.embedding[i]!, 6))
    expect(fake.requests.at(-1)!.body.encoding_format).toBe('float')
  })

  it('lists the models the key may use', async () => {
    const models = await client.models.list()
    expect(models.data.map((m) => m.id)).toContain('gpt-4o-mini')
  })
})

describe('attribution and admin', () => {
  it('reports spend by session, and a team key sees only its own team', async () => {
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'attrib' }] }, { headers: { 'x-sluice-session': 'admin-sess' } })
    const clientB = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_B_KEY, maxRetries: 0 })
    await clientB.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'b team' }] }, { headers: { 'x-sluice-session': 'b-sess' } })
    await flush()
    const admin = await (await fetch(`${gw.url}/admin/spend?group_by=team`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json()
    expect(admin.groups.map((g: any) => g.key).sort()).toEqual(['a', 'b'])
    const own = await (await fetch(`${gw.url}/admin/spend?group_by=team`, { headers: { authorization: `Bearer ${TEAM_B_KEY}` } })).json()
    expect(own.groups.map((g: any) => g.key)).toEqual(['b'])
    const forbidden = await fetch(`${gw.url}/admin/spend?team=a`, { headers: { authorization: `Bearer ${TEAM_B_KEY}` } })
    expect(forbidden.status).toBe(403)
    const sess = await (await fetch(`${gw.url}/admin/sessions/admin-sess`, { headers: { authorization: `Bearer ${TEAM_A_KEY}` } })).json()
    expect(sess.total.requests).toBe(1)
    expect(sess.total.cost_usd).toBeGreaterThan(0)
    const other = await fetch(`${gw.url}/admin/sessions/admin-sess`, { headers: { authorization: `Bearer ${TEAM_B_KEY}` } })
    expect(other.status).toBe(404)
  })

  it('exposes Prometheus metrics without session or key labels', async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    expect(text).toMatch(/sluice_requests_total\{team="a",model="gpt-4o-mini",provider="openai",status="200"\} \d+/)
    expect(text).toMatch(/sluice_cost_usd_total\{team="a",model="gpt-4o-mini"\} [0-9.e-]+/)
    expect(text).toContain('sluice_gateway_overhead_seconds_bucket')
    expect(text).not.toMatch(/session|sess-1|key_id/)
  })

  it('health and readiness', async () => {
    expect((await fetch(`${gw.url}/healthz`)).status).toBe(200)
    const ready = await fetch(`${gw.url}/readyz`)
    expect(ready.status).toBe(200)
    expect((await ready.json()).checks.store).toBe('ok')
  })
})

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 10_000, between?: () => Promise<void>) {
  const deadline = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await between?.()
    await new Promise((r) => setTimeout(r, 20))
  }
}
