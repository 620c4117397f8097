import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { createTracing } from '../src/otel/index.js'
import { createOtlpExporter, tracesUrl } from '../src/otel/exporter.js'
import { encodeSpans, type SpanData } from '../src/otel/encode.js'
import { parseTraceparent, sampledByRatio, startTrace } from '../src/otel/trace-context.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { TEAM_A_KEY, TEAM_B_KEY, startTestGateway, type TestGateway } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'

/** A loopback OTLP/HTTP collector: records every export request; can answer with an error or never. */
async function startCollector(opts: { mode?: 'ok' | 'hang' | 'error' } = {}) {
  const exports: { path: string; headers: IncomingHttpHeaders; raw: string; body: any }[] = []
  const sockets = new Set<Socket>()
  const server = createServer((req, res) => {
    let raw = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => (raw += c))
    req.on('end', () => {
      exports.push({ path: req.url ?? '', headers: req.headers, raw, body: JSON.parse(raw) })
      if (opts.mode === 'hang') return
      res.writeHead(opts.mode === 'error' ? 503 : 200, { 'content-type': 'application/json' })
      res.end('{}')
    })
  })
  server.on('connection', (s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const spans = () => exports.flatMap((e) => e.body.resourceSpans.flatMap((rs: any) => rs.scopeSpans.flatMap((ss: any) => ss.spans.map((s: any) => ({ ...s, resource: attrs(rs.resource.attributes), attrs: attrs(s.attributes) })))))
  return {
    url,
    exports,
    spans,
    async waitFor(test: (spans: any[]) => boolean, timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs
      while (!test(spans())) {
        if (Date.now() > deadline) throw new Error(`spans did not arrive: ${JSON.stringify(spans().map((s) => s.name))}`)
        await new Promise((r) => setTimeout(r, 10))
      }
      return spans()
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    }
  }
}
type Collector = Awaited<ReturnType<typeof startCollector>>

/** OTLP attributes → plain values (int64 strings stay strings, as they arrive). */
function attrs(list: { key: string; value: any }[] = []): Record<string, unknown> {
  const unwrap = (v: any): unknown => ('arrayValue' in v ? v.arrayValue.values.map(unwrap) : Object.values(v)[0])
  return Object.fromEntries(list.map((a) => [a.key, unwrap(a.value)]))
}

const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CALLER_SPAN = '00f067aa0ba902b7'
const PROMPT = 'the secret launch code is banana-42'

describe('traces through a gateway with telemetry.otlp', () => {
  let stack: Stack
  let fake: FakeOpenAI
  let collector: Collector
  let gw: TestGateway
  let client: OpenAI

  beforeAll(async () => {
    collector = await startCollector()
    ;({ fake, gw, client } = stack = await startStack({
      anthropic: true,
      policies: { a: { routing: { routes: { smart: { fallback: ['gpt-4o', 'gpt-4o-mini'] } }, breaker: false, retry: { retries: 1, base_ms: 1, max_ms: 1 } } }, b: { cache: { exact: { enabled: true } } } },
      config: { telemetry: { otlp: { endpoint: collector.url, batch_delay_ms: 20, service_name: 'sluice-test', headers: { 'x-collector-token': 'tok-1' } } } }
    }))
  })
  afterAll(async () => {
    await stack?.close()
    await collector?.close()
  })
  beforeEach(() => {
    fake.script = undefined
  })

  it('makes a server span, child of the caller traceparent, and a GenAI client span per attempt', async () => {
    fake.script = () => ({ content: 'blue whales sing', promptTokens: 21, completionTokens: 3, cachedTokens: 5 })
    const { response } = await client.chat.completions
      .create(
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }], temperature: 0.5, max_tokens: 40, top_p: 0.9 },
        { headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01`, tracestate: 'vendor=1', 'x-sluice-session': 'sess-otel-1', 'x-sluice-agent': 'planner' } }
      )
      .withResponse()
    const requestId = response.headers.get('x-sluice-request-id')
    const spans = await collector.waitFor((s) => s.some((x) => x.attrs['sluice.request_id'] === requestId))
    const server = spans.find((s) => s.attrs['sluice.request_id'] === requestId)
    const children = spans.filter((s) => s.parentSpanId === server.spanId)

    expect(server).toMatchObject({ traceId: CALLER_TRACE, parentSpanId: CALLER_SPAN, traceState: 'vendor=1', name: 'POST /v1/chat/completions', kind: 2 })
    expect(server.spanId).toMatch(/^[0-9a-f]{16}$/)
    expect(server.resource).toMatchObject({ 'service.name': 'sluice-test' })
    expect(server.attrs).toMatchObject({
      'http.request.method': 'POST',
      'http.route': '/v1/chat/completions',
      'http.response.status_code': '200',
      'session.id': 'sess-otel-1',
      'sluice.team': 'a',
      'sluice.agent': 'planner',
      'sluice.model': 'gpt-4o-mini',
      'sluice.stream': false,
      'sluice.attempts': '1',
      'gen_ai.response.finish_reasons': ['stop']
    })
    expect(server.attrs['sluice.cost_usd']).toBeCloseTo(Number(response.headers.get('x-sluice-cost-usd')), 12)

    expect(children).toHaveLength(1)
    const call = children[0]
    expect(call).toMatchObject({ traceId: CALLER_TRACE, name: 'chat gpt-4o-mini', kind: 3 })
    expect(call.attrs).toMatchObject({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.system': 'openai',
      'gen_ai.request.model': 'gpt-4o-mini',
      'gen_ai.request.max_tokens': '40',
      'gen_ai.request.temperature': 0.5,
      'gen_ai.request.top_p': 0.9,
      'gen_ai.response.model': 'gpt-4o-mini',
      'gen_ai.response.finish_reasons': ['stop'],
      'gen_ai.usage.input_tokens': '21',
      'gen_ai.usage.output_tokens': '3',
      'gen_ai.usage.cache_read.input_tokens': '5',
      'server.address': '127.0.0.1',
      'server.port': String(new URL(fake.url).port),
      'sluice.target': 'gpt-4o-mini',
      'sluice.attempt.status': 'ok'
    })
    expect(call.attrs['gen_ai.response.id']).toMatch(/\w+/)
    // the client span sits inside the server span, times as unix nanos in decimal strings
    expect(typeof call.startTimeUnixNano).toBe('string')
    expect(BigInt(call.startTimeUnixNano)).toBeGreaterThanOrEqual(BigInt(server.startTimeUnixNano))
    expect(BigInt(call.endTimeUnixNano)).toBeLessThanOrEqual(BigInt(server.endTimeUnixNano))
    expect(Math.abs(Number(BigInt(server.startTimeUnixNano) / 1_000_000n) - Date.now())).toBeLessThan(10_000)

    // no prompt, no completion, no key anywhere in what was exported; the configured headers were sent
    const everything = collector.exports.map((e) => e.raw).join('\n')
    for (const secret of [PROMPT, 'banana-42', 'blue whales sing', TEAM_A_KEY, fake.apiKey]) expect(everything).not.toContain(secret)
    expect(collector.exports[0]!.path).toBe('/v1/traces')
    expect(collector.exports[0]!.headers).toMatchObject({ 'content-type': 'application/json', 'x-collector-token': 'tok-1' })
  })

  it('starts its own trace without traceparent and records stream finish reasons', async () => {
    fake.script = () => ({ content: 'one two three', finishReason: 'length' })
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count' }], stream: true, stream_options: { include_usage: true } }, { headers: { 'x-sluice-session': 'sess-stream' } })
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
    expect(text).toContain('three')
    const spans = await collector.waitFor((s) => s.some((x) => x.attrs['session.id'] === 'sess-stream'))
    const server = spans.find((s) => s.attrs['session.id'] === 'sess-stream')
    expect(server.parentSpanId ?? '').toBe('')
    expect(server.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(server.traceId).not.toBe(CALLER_TRACE)
    expect(server.attrs).toMatchObject({ 'sluice.stream': true, 'gen_ai.response.finish_reasons': ['length'], 'http.response.status_code': '200' })
    const call = spans.find((s) => s.parentSpanId === server.spanId)
    expect(call.attrs).toMatchObject({ 'gen_ai.response.finish_reasons': ['length'], 'sluice.attempt.status': 'ok' })
    expect(Number(call.attrs['gen_ai.usage.output_tokens'])).toBeGreaterThan(0)
    expect(Number(call.attrs['sluice.ttft_ms'])).toBeGreaterThan(0)
  })

  it('one client span per attempt (retry, fallback), the failed ones marked as errors', async () => {
    fake.script = (body) => (body.model === 'gpt-4o' ? { error: { status: 500, message: 'upstream exploded' } } : { content: 'saved by the fallback' })
    const { response } = await client.chat.completions.create({ model: 'smart', messages: [{ role: 'user', content: 'hi' }] }).withResponse()
    const requestId = response.headers.get('x-sluice-request-id')
    const spans = await collector.waitFor((s) => s.some((x) => x.attrs['sluice.request_id'] === requestId))
    const server = spans.find((s) => s.attrs['sluice.request_id'] === requestId)
    const calls = spans.filter((s) => s.parentSpanId === server.spanId).sort((x, y) => (BigInt(x.startTimeUnixNano) < BigInt(y.startTimeUnixNano) ? -1 : 1))
    expect(calls.map((c) => c.name)).toEqual(['chat gpt-4o', 'chat gpt-4o', 'chat gpt-4o-mini'])
    for (const failed of calls.slice(0, 2)) {
      expect(failed.status).toEqual({ code: 2, message: 'error' })
      expect(failed.attrs).toMatchObject({ 'error.type': 'error', 'sluice.attempt.status': 'error' })
      expect(failed.attrs['gen_ai.response.finish_reasons']).toBeUndefined()
    }
    expect(calls[1].attrs['sluice.attempt.reason']).toMatch(/retry 1/)
    expect(calls[2].attrs).toMatchObject({ 'sluice.attempt.status': 'ok', 'gen_ai.response.finish_reasons': ['stop'] })
    expect(calls[2].attrs['sluice.attempt.reason']).toMatch(/fallback/)
    for (let i = 1; i < calls.length; i++) expect(BigInt(calls[i - 1].endTimeUnixNano)).toBeLessThanOrEqual(BigInt(calls[i].startTimeUnixNano))
    expect(server.attrs).toMatchObject({ 'sluice.model': 'smart', 'sluice.attempts': '3' })
    expect(collector.exports.map((e) => e.raw).join('\n')).not.toContain('upstream exploded')
  })

  it('a failed request has an error server span with the HTTP status and error type', async () => {
    fake.script = () => ({ error: { status: 400, message: 'bad things in the request', code: 'invalid_value' } })
    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-sluice-session': 'sess-fail' } }).catch((e) => e)
    expect(err.status).toBe(400)
    const spans = await collector.waitFor((s) => s.some((x) => x.attrs['session.id'] === 'sess-fail'))
    const server = spans.find((s) => s.attrs['session.id'] === 'sess-fail')
    expect(server.attrs['http.response.status_code']).toBe('400')
    expect(server.status.code).toBe(2)
    expect(server.attrs['error.type']).toBeTruthy()
  })

  it('a cache hit is a server span with the cache result and no provider call', async () => {
    const b = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_B_KEY, maxRetries: 0 })
    const body = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'cache me please' }], temperature: 0 }
    await b.chat.completions.create(body, { headers: { 'x-sluice-session': 'sess-cache-1' } })
    await b.chat.completions.create(body, { headers: { 'x-sluice-session': 'sess-cache-2' } })
    const spans = await collector.waitFor((s) => s.some((x) => x.attrs['session.id'] === 'sess-cache-2'))
    const miss = spans.find((s) => s.attrs['session.id'] === 'sess-cache-1')
    const hit = spans.find((s) => s.attrs['session.id'] === 'sess-cache-2')
    expect(miss.attrs['sluice.cache']).toBe('miss')
    expect(hit.attrs).toMatchObject({ 'sluice.cache': 'hit', 'sluice.attempts': '0', 'sluice.team': 'b' })
    expect(hit.attrs['sluice.saved_usd']).toBeGreaterThan(0)
    expect(spans.filter((s) => s.parentSpanId === hit.spanId)).toHaveLength(0)
  })

  it('traces the Anthropic Messages surface with the anthropic provider name', async () => {
    const messages = new Anthropic({ baseURL: gw.url, apiKey: TEAM_A_KEY, maxRetries: 0 })
    const stream = messages.messages.stream({ model: 'claude-sonnet', max_tokens: 64, messages: [{ role: 'user', content: PROMPT }] }, { headers: { 'x-sluice-session': 'sess-messages' } })
    await stream.finalMessage()
    const spans = await collector.waitFor((s) => s.some((x) => x.attrs['session.id'] === 'sess-messages'))
    const server = spans.find((s) => s.attrs['session.id'] === 'sess-messages')
    expect(server).toMatchObject({ name: 'POST /v1/messages' })
    expect(server.attrs).toMatchObject({ 'http.route': '/v1/messages', 'sluice.surface': 'messages', 'sluice.stream': true })
    const call = spans.find((s) => s.parentSpanId === server.spanId)
    expect(call.attrs).toMatchObject({ 'gen_ai.provider.name': 'anthropic', 'gen_ai.request.model': 'claude-sonnet-4-5', 'gen_ai.request.max_tokens': '64', 'sluice.attempt.status': 'ok' })
    expect(Number(call.attrs['gen_ai.usage.input_tokens'])).toBeGreaterThan(0)
    expect(call.attrs['gen_ai.response.finish_reasons']).toHaveLength(1)
    expect(collector.exports.map((e) => e.raw).join('\n')).not.toContain('banana-42')
  })

  it('a caller trace that is not sampled is not recorded', async () => {
    const unsampledTrace = 'aaaabbbbccccddddeeeeffff00001111'
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { traceparent: `00-${unsampledTrace}-${CALLER_SPAN}-00` } })
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-sluice-session': 'sess-after-unsampled' } })
    const spans = await collector.waitFor((s) => s.some((x) => x.attrs['session.id'] === 'sess-after-unsampled'))
    expect(spans.filter((s) => s.traceId === unsampledTrace)).toHaveLength(0)
  })

  it('counts exported spans in /metrics', async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text()
    expect(text).toMatch(/sluice_otel_spans_total\{result="exported"\} [1-9]/)
  })
})

describe('off by default and never in the way', () => {
  it('sends nothing and adds no metric without a telemetry block, whatever the environment says', async () => {
    const fake = await startFakeOpenAI()
    const collector = await startCollector()
    const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = collector.url
    const gw = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey })
    try {
      const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 })
      await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } })
      await new Promise((r) => setTimeout(r, 1500))
      expect(collector.exports).toHaveLength(0)
      expect(gw.gateway.metrics.registry.getSingleMetric('sluice_otel_spans_total')).toBeUndefined()
      expect(gw.config.telemetry).toBeUndefined()
    } finally {
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved
      await gw.close(0)
      await collector.close()
      await fake.close()
    }
    expect(createTracing(undefined, { providerConfig: () => undefined })).toBeUndefined()
    expect(createTracing({}, { providerConfig: () => undefined })).toBeUndefined()
  })

  it('a bad endpoint is a config error naming the path', async () => {
    await expect(startTestGateway({ config: { telemetry: { otlp: { endpoint: 'localhost:4318' } } } })).rejects.toThrow(/telemetry\.otlp\.endpoint: an http\(s\) URL/)
  })

  it('sample_ratio 0 records nothing', async () => {
    const fake = await startFakeOpenAI()
    const collector = await startCollector()
    const gw = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, config: { telemetry: { otlp: { endpoint: collector.url, sample_ratio: 0, batch_delay_ms: 10 } } } })
    try {
      const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 })
      for (let i = 0; i < 5; i++) await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] })
    } finally {
      await gw.close(0)
    }
    expect(collector.exports).toHaveLength(0)
    await collector.close()
    await fake.close()
  })

  for (const mode of ['hang', 'refused', 'error'] as const) {
    it(`a collector that ${mode === 'hang' ? 'never answers' : mode === 'refused' ? 'refuses connections' : 'answers 503'} neither slows nor fails requests`, async () => {
      const fake = await startFakeOpenAI()
      const collector = await startCollector({ mode: mode === 'error' ? 'error' : 'hang' })
      if (mode === 'refused') await collector.close()
      // a hanging export holds its connection for timeout_ms; requests must not wait for it
      const gw = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey, config: { telemetry: { otlp: { endpoint: collector.url, timeout_ms: 3000, batch_delay_ms: 1, max_batch_spans: 2, max_queue_spans: 8 } } } })
      const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 })
      try {
        const started = performance.now()
        const slowest: number[] = []
        for (let i = 0; i < 30; i++) {
          const t = performance.now()
          const res = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `q${i}` }] })
          expect(res.choices[0]!.message.content).toBe(`You said: q${i}`)
          slowest.push(performance.now() - t)
        }
        // 30 requests, each far below the 3 s export timeout
        expect(Math.max(...slowest)).toBeLessThan(1000)
        expect(performance.now() - started).toBeLessThan(3000)
        const metrics = await (await fetch(`${gw.url}/metrics`)).text()
        if (mode === 'hang') expect(metrics).toMatch(/sluice_otel_spans_total\{result="dropped"\} [1-9]/)
        else await expect.poll(async () => (await (await fetch(`${gw.url}/metrics`)).text()).match(/sluice_otel_spans_total\{result="failed"\} ([0-9]+)/)?.[1] ?? '0').not.toBe('0')
      } finally {
        // shutdown waits for the collector a bounded time only
        const closing = performance.now()
        await gw.close(0)
        expect(performance.now() - closing).toBeLessThan(5000)
        if (mode !== 'refused') await collector.close()
        await fake.close()
      }
    })
  }
})

describe('exporter', () => {
  const span = (i: number): SpanData => ({
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: `b7ad6b71692033${String(i).padStart(2, '0')}`,
    name: `s${i}`,
    kind: 'internal',
    startMs: performance.now(),
    endMs: performance.now() + 1,
    attributes: { n: i },
    status: { code: 'unset' }
  })

  it('batches, bounds its queue, and drops (counting) what does not fit', async () => {
    const collector = await startCollector({ mode: 'hang' })
    const counts: Record<string, number> = {}
    const exporter = createOtlpExporter({
      endpoint: collector.url,
      resource: { 'service.name': 't' },
      scope: { name: 't' },
      timeoutMs: 2000,
      maxQueueSpans: 5,
      maxBatchSpans: 3,
      batchDelayMs: 10_000,
      onSpans: (r, n) => (counts[r] = (counts[r] ?? 0) + n)
    })
    const t = performance.now()
    for (let i = 0; i < 20; i++) exporter.enqueue([span(i)])
    // enqueue never waits for the network
    expect(performance.now() - t).toBeLessThan(50)
    await collector.waitFor((s) => s.length === 3)
    // 3 went out in the first (hanging) batch, 5 wait in the queue, 12 were dropped
    expect(exporter.stats()).toMatchObject({ queued: 5, dropped: 12 })
    expect(counts.dropped).toBe(12)
    await exporter.close(200)
    expect(exporter.stats().dropped).toBe(17)
    exporter.enqueue([span(99)])
    expect(exporter.stats().dropped).toBe(18)
    await collector.close()
  })

  it('flushes what is queued on close', async () => {
    const collector = await startCollector()
    const exporter = createOtlpExporter({ endpoint: collector.url + '/', resource: {}, scope: { name: 't' }, timeoutMs: 2000, maxQueueSpans: 100, maxBatchSpans: 4, batchDelayMs: 60_000 })
    for (let i = 0; i < 10; i++) exporter.enqueue([span(i)])
    await exporter.close()
    expect(collector.spans().map((s) => s.name).sort()).toEqual([...Array(10).keys()].map((i) => `s${i}`).sort())
    expect(collector.exports.map((e) => e.body.resourceSpans[0].scopeSpans[0].spans.length)).toEqual([4, 4, 2])
    expect(exporter.stats()).toMatchObject({ exported: 10, dropped: 0, failed: 0, queued: 0 })
    await collector.close()
  })

  it('encodes OTLP/JSON: hex ids, nanos as strings, typed attributes, integer enums', () => {
    const s = span(1)
    s.attributes = { str: 'x', int: 3, dbl: 0.25, whole: { double: 0 }, bool: true, list: ['a', 'b'], gone: undefined }
    s.status = { code: 'error', message: 'boom' }
    const body = encodeSpans({ 'service.name': 'svc' }, { name: 'sluice' }, [s])
    const out = body.resourceSpans[0]!.scopeSpans[0]!.spans[0]!
    expect(out).toMatchObject({ traceId: s.traceId, spanId: s.spanId, kind: 1, status: { code: 2, message: 'boom' } })
    expect(out.startTimeUnixNano).toMatch(/^\d{19}$/)
    expect(out.attributes).toEqual([
      { key: 'str', value: { stringValue: 'x' } },
      { key: 'int', value: { intValue: '3' } },
      { key: 'dbl', value: { doubleValue: 0.25 } },
      { key: 'whole', value: { doubleValue: 0 } },
      { key: 'bool', value: { boolValue: true } },
      { key: 'list', value: { arrayValue: { values: [{ stringValue: 'a' }, { stringValue: 'b' }] } } }
    ])
    expect(body.resourceSpans[0]!.resource.attributes).toEqual([{ key: 'service.name', value: { stringValue: 'svc' } }])
  })

  it('appends /v1/traces to a base endpoint only', () => {
    expect(tracesUrl('http://c:4318').href).toBe('http://c:4318/v1/traces')
    expect(tracesUrl('http://c:4318/otlp/').href).toBe('http://c:4318/otlp/v1/traces')
    expect(tracesUrl('http://c:4318/v1/traces').href).toBe('http://c:4318/v1/traces')
  })
})

describe('trace context', () => {
  it('parses W3C traceparent and rejects invalid ones', () => {
    expect(parseTraceparent(`00-${CALLER_TRACE}-${CALLER_SPAN}-01`)).toEqual({ traceId: CALLER_TRACE, parentSpanId: CALLER_SPAN, sampled: true })
    expect(parseTraceparent(`00-${CALLER_TRACE}-${CALLER_SPAN}-00`)?.sampled).toBe(false)
    // a later version may carry more fields
    expect(parseTraceparent(`01-${CALLER_TRACE}-${CALLER_SPAN}-01-extra`)?.traceId).toBe(CALLER_TRACE)
    for (const bad of [
      undefined,
      '',
      `00-${'0'.repeat(32)}-${CALLER_SPAN}-01`,
      `00-${CALLER_TRACE}-${'0'.repeat(16)}-01`,
      `ff-${CALLER_TRACE}-${CALLER_SPAN}-01`,
      `00-${CALLER_TRACE}-${CALLER_SPAN}-01-extra`,
      `00-${CALLER_TRACE.toUpperCase()}-${CALLER_SPAN}-01`,
      `00-${CALLER_TRACE.slice(1)}-${CALLER_SPAN}-01`
    ]) expect(parseTraceparent(bad)).toBeUndefined()
  })

  it('an invalid traceparent starts a new trace; ratio sampling keeps about the ratio', () => {
    const t = startTrace('garbage', undefined, 1)!
    expect(t.traceId).toMatch(/^[0-9a-f]{32}$/)
    expect(t.parentSpanId).toBeUndefined()
    let kept = 0
    for (let i = 0; i < 4000; i++) if (startTrace(undefined, undefined, 0.25)) kept++
    expect(kept / 4000).toBeGreaterThan(0.2)
    expect(kept / 4000).toBeLessThan(0.3)
    expect(sampledByRatio('f'.repeat(32), 0)).toBe(false)
    expect(sampledByRatio('f'.repeat(32), 1)).toBe(true)
    expect(sampledByRatio('0'.repeat(31) + '1', 0.01)).toBe(true)
  })
})
