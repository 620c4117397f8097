/**
 * A loopback fake of an OpenAI-compatible upstream for tests: chat completions (JSON and SSE with the
 * usage chunk when `stream_options.include_usage`), tool calls, json mode, logprobs, embeddings
 * (float and base64), the Responses API (`/v1/responses`: JSON and SSE with `event:` lines, function and
 * custom tool calls, reasoning items), OpenAI error bodies, and a record of every request and of the tokens
 * it served.
 *
 * @example
 * const fake = await startFakeOpenAI()
 * fake.script = (req) => ({ content: 'hello' })
 * // point a provider at fake.url (ends in /v1)
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Socket } from 'node:net'

export interface FakeOpenAIReply {
  content?: string
  /** Stream exactly these content pieces (one chunk each) instead of splitting content by words. */
  chunks?: string[]
  /** Completion tokens to report (defaults to the word count of content). */
  completionTokens?: number
  promptTokens?: number
  cachedTokens?: number
  toolCalls?: { name: string; arguments: string }[]
  /** /v1/responses only: custom (freeform) tool calls, e.g. Codex's apply_patch. */
  customToolCalls?: { name: string; input: string }[]
  /** /v1/responses only: a reasoning item first (with encrypted_content when `include` asks for it). */
  reasoning?: string
  /** Logprob reported for every token (when the request asks for logprobs). */
  logprob?: number
  finishReason?: string
  error?: { status: number; message: string; type?: string; code?: string; headers?: Record<string, string> }
  /** Milliseconds before headers. */
  delayMs?: number
  /** Milliseconds between stream chunks. */
  chunkDelayMs?: number
  /** Omit the usage chunk even when asked (a provider without stream usage). */
  noUsage?: boolean
  /** Raw text to send as the body instead (malformed JSON / SSE). */
  raw?: string
  /** Destroy the socket after this many stream chunks. */
  resetAfterChunks?: number
  /** Milliseconds between `data: [DONE]` and the end of the body (real providers often end it a packet later). */
  endDelayMs?: number
  /** Non-stream: send the status line and half of the JSON body, then destroy the socket. */
  resetMidBody?: boolean
  /** Destroy the socket before answering anything (no status line). */
  resetBeforeHeaders?: boolean
}

export interface RecordedOpenAIRequest {
  path: string
  headers: IncomingHttpHeaders
  body: any
  aborted: boolean
}

export interface FakeOpenAI {
  url: string
  apiKey: string
  requests: RecordedOpenAIRequest[]
  /** Tokens of answers the fake completed or started streaming (what a real provider would bill). */
  served: { prompt: number; completion: number; requests: number }
  script: ((body: any, path: string) => FakeOpenAIReply | undefined) | undefined
  /** TCP connections open right now (keep-alive ones included). */
  openConnections(): number
  /** TCP connections accepted since the fake started. */
  connectionsOpened(): number
  /** Requests whose response has not closed yet (an upstream call the gateway still holds open). */
  activeRequests(): number
  close(): Promise<void>
}

export async function startFakeOpenAI(opts: { apiKey?: string } = {}): Promise<FakeOpenAI> {
  const apiKey = opts.apiKey ?? 'sk-fake-openai-upstream'
  const sockets = new Set<Socket>()
  let opened = 0
  let active = 0
  const fake: FakeOpenAI = {
    url: '',
    apiKey,
    requests: [],
    served: { prompt: 0, completion: 0, requests: 0 },
    script: undefined,
    openConnections: () => sockets.size,
    connectionsOpened: () => opened,
    activeRequests: () => active,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((r) => server.close(() => r()))
    }
  }

  const server = createServer(async (req, res) => {
    active++
    res.on('close', () => active--)
    let raw = ''
    for await (const c of req) raw += c
    let body: any
    try {
      body = JSON.parse(raw)
    } catch {
      body = undefined
    }
    const rec: RecordedOpenAIRequest = { path: req.url ?? '', headers: req.headers, body, aborted: false }
    fake.requests.push(rec)
    res.on('close', () => {
      if (!res.writableFinished) rec.aborted = true
    })
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      return sendError(res, 401, { message: 'Incorrect API key provided.', type: 'invalid_request_error', code: 'invalid_api_key' })
    }
    if (!body) return sendError(res, 400, { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error' })
    const reply = fake.script?.(body, rec.path) ?? {}
    if (reply.delayMs) await sleep(reply.delayMs)
    if (reply.resetBeforeHeaders) return void req.socket.destroy()
    if (reply.error) return sendError(res, reply.error.status, reply.error, reply.error.headers)
    if (reply.raw !== undefined) {
      res.writeHead(200, { 'content-type': body.stream ? 'text/event-stream' : 'application/json' })
      return res.end(reply.raw)
    }
    if (rec.path.endsWith('/embeddings')) return embeddings(res, body)
    if (rec.path.endsWith('/responses')) return responses(res, req, body, reply, fake)
    if (!rec.path.endsWith('/chat/completions')) return sendError(res, 404, { message: `Unknown path ${rec.path}` })
    const content = reply.chunks?.join('') ?? reply.content ?? defaultContent(body)
    const prompt = reply.promptTokens ?? promptTokens(body)
    const completion = reply.completionTokens ?? (reply.toolCalls ? 12 : content.split(/\s+/).filter(Boolean).length)
    const usage = {
      prompt_tokens: prompt,
      completion_tokens: completion,
      total_tokens: prompt + completion,
      prompt_tokens_details: { cached_tokens: reply.cachedTokens ?? 0 },
      completion_tokens_details: { reasoning_tokens: 0 }
    }
    const id = `chatcmpl-fake${fake.requests.length}`
    const created = Math.floor(Date.now() / 1000)
    const finish = reply.finishReason ?? (reply.toolCalls ? 'tool_calls' : 'stop')
    const toolCalls = reply.toolCalls?.map((t, i) => ({ id: `call_${i}_${id}`, type: 'function', function: t }))
    const words = reply.chunks ?? (content ? content.split(/(?<= )/) : [])
    const lp = reply.logprob ?? -0.05
    const logprobs = body.logprobs ? { content: words.map((w) => ({ token: w, logprob: lp, bytes: null, top_logprobs: [] })), refusal: null } : null
    fake.served.requests++
    fake.served.prompt += prompt

    if (!body.stream) {
      fake.served.completion += completion
      res.writeHead(200, { 'content-type': 'application/json' })
      const json = JSON.stringify({
          id,
          object: 'chat.completion',
          created,
          model: body.model,
          system_fingerprint: 'fp_fake',
          choices: [{ index: 0, message: { role: 'assistant', content: toolCalls ? null : content, refusal: null, ...(toolCalls ? { tool_calls: toolCalls } : {}) }, logprobs, finish_reason: finish }],
          usage
        })
      if (reply.resetMidBody) {
        res.write(json.slice(0, Math.floor(json.length / 2)))
        return void setTimeout(() => req.socket.destroy(), 20)
      }
      return res.end(json)
    }

    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
    const base = { id, object: 'chat.completion.chunk', created, model: body.model, system_fingerprint: 'fp_fake' }
    const send = (obj: unknown) => res.write(`data: ${JSON.stringify(obj)}\n\n`)
    const chunks: unknown[] = [{ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] }]
    if (toolCalls) {
      toolCalls.forEach((tc, index) => {
        chunks.push({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index, id: tc.id, type: 'function', function: { name: tc.function.name, arguments: '' } }] }, finish_reason: null }] })
        const a = tc.function.arguments
        const third = Math.ceil(a.length / 3)
        for (let i = 0; i < a.length; i += third) chunks.push({ ...base, choices: [{ index: 0, delta: { tool_calls: [{ index, function: { arguments: a.slice(i, i + third) } }] }, finish_reason: null }] })
      })
    } else {
      for (const w of words) chunks.push({ ...base, choices: [{ index: 0, delta: { content: w }, logprobs: body.logprobs ? { content: [{ token: w, logprob: lp, bytes: null, top_logprobs: [] }] } : null, finish_reason: null }] })
    }
    chunks.push({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: finish }] })
    let sent = 0
    let servedCompletion = 0
    const perChunk = completion / Math.max(1, chunks.length - 1)
    for (const c of chunks) {
      if (res.destroyed) break
      if (reply.resetAfterChunks !== undefined && sent >= reply.resetAfterChunks) {
        req.socket.destroy()
        break
      }
      send(c)
      sent++
      servedCompletion += sent > 1 ? perChunk : 0
      if (reply.chunkDelayMs) await sleep(reply.chunkDelayMs)
    }
    if (res.destroyed || req.socket.destroyed) {
      // a real provider bills what it generated before the client went away
      fake.served.completion += Math.round(servedCompletion)
      return
    }
    fake.served.completion += completion
    if (body.stream_options?.include_usage && !reply.noUsage) send({ ...base, choices: [], usage })
    if (!reply.endDelayMs) return void res.end('data: [DONE]\n\n')
    res.write('data: [DONE]\n\n')
    await sleep(reply.endDelayMs)
    res.end()
  })
  server.on('connection', (s) => {
    opened++
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()))
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`
  return fake
}

function embeddings(res: ServerResponse, body: any) {
  const inputs: unknown[] = Array.isArray(body.input) && typeof body.input[0] !== 'number' ? body.input : [body.input]
  const data = inputs.map((inp, index) => {
    const text = String(inp)
    const vec = Array.from({ length: 8 }, (_, i) => Math.sin(text.length + i) / 2)
    return { object: 'embedding', index, embedding: body.encoding_format === 'base64' ? Buffer.from(new Float32Array(vec).buffer).toString('base64') : vec }
  })
  const tokens = inputs.reduce<number>((s, t) => s + String(t).split(/\s+/).length, 0)
  res.writeHead(200, { 'content-type': 'application/json' })
  res.end(JSON.stringify({ object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } }))
}

/**
 * `POST /v1/responses` as OpenAI answers it: a Response object, or its SSE events (`event:` line = `type`,
 * `sequence_number` from 0): created, in_progress, per output item added → deltas → done, then
 * `response.completed` (or `response.incomplete` for a max_output_tokens cut) carrying the usage.
 */
async function responses(res: ServerResponse, req: { socket: Socket }, body: any, reply: FakeOpenAIReply, fake: FakeOpenAI) {
  const n = fake.requests.length
  const inputText = typeof body.input === 'string' ? body.input : [...(body.input ?? [])].reverse().find((i: any) => (i.type ?? 'message') === 'message' && i.role === 'user')
  const lastUser = typeof inputText === 'string' ? inputText : typeof inputText?.content === 'string' ? inputText.content : (inputText?.content ?? []).map((p: any) => p.text ?? '').join('')
  const calls = (reply.toolCalls?.length ?? 0) + (reply.customToolCalls?.length ?? 0) > 0
  const content = reply.chunks?.join('') ?? reply.content ?? (calls ? '' : `You said: ${String(lastUser || 'your message').slice(0, 200)}`)
  const input = reply.promptTokens ?? Math.max(1, Math.ceil((JSON.stringify(body.input ?? '') + (body.instructions ?? '') + JSON.stringify(body.tools ?? [])).length / 4))
  const reasoningTokens = reply.reasoning ? 8 : 0
  const output = reply.completionTokens ?? (calls ? 12 : content.split(/\s+/).filter(Boolean).length) + reasoningTokens
  const usage = {
    input_tokens: input,
    input_tokens_details: { cached_tokens: reply.cachedTokens ?? 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: reasoningTokens },
    total_tokens: input + output
  }
  const incomplete = reply.finishReason === 'length'
  const items: any[] = []
  if (reply.reasoning) {
    const encrypted = (body.include ?? []).includes('reasoning.encrypted_content') ? { encrypted_content: `enc_${Buffer.from(reply.reasoning).toString('base64')}` } : {}
    items.push({ type: 'reasoning', id: `rs_fake${n}`, summary: [{ type: 'summary_text', text: reply.reasoning }], ...encrypted })
  }
  if (content) items.push({ type: 'message', id: `msg_fake${n}`, status: incomplete ? 'incomplete' : 'completed', role: 'assistant', content: [{ type: 'output_text', text: content, annotations: [], logprobs: [] }] })
  reply.toolCalls?.forEach((t, i) => items.push({ type: 'function_call', id: `fc_fake${n}_${i}`, call_id: `call_${n}_${i}`, name: t.name, arguments: t.arguments, status: 'completed' }))
  reply.customToolCalls?.forEach((t, i) => items.push({ type: 'custom_tool_call', id: `ctc_fake${n}_${i}`, call_id: `call_c${n}_${i}`, name: t.name, input: t.input, status: 'completed' }))
  const response = (status: string, out: any[], u: unknown) => ({
    id: `resp_fake${n}`,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status,
    error: null,
    incomplete_details: status === 'incomplete' ? { reason: 'max_output_tokens' } : null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model: body.model,
    output: out,
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: { effort: body.reasoning?.effort ?? null, summary: body.reasoning?.summary ?? null },
    store: body.store ?? true,
    temperature: body.temperature ?? 1,
    text: body.text ?? { format: { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: body.top_p ?? 1,
    truncation: 'disabled',
    usage: u,
    user: body.user ?? null,
    metadata: body.metadata ?? {}
  })
  const final = incomplete ? 'incomplete' : 'completed'
  fake.served.requests++
  fake.served.prompt += input
  if (!body.stream) {
    fake.served.completion += output
    res.writeHead(200, { 'content-type': 'application/json' })
    return res.end(JSON.stringify(response(final, items, usage)))
  }

  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  let seq = 0
  const events: any[] = []
  const ev = (type: string, fields: Record<string, unknown>) => events.push({ type, sequence_number: seq++, ...fields })
  ev('response.created', { response: response('in_progress', [], null) })
  ev('response.in_progress', { response: response('in_progress', [], null) })
  items.forEach((item, index) => {
    const pieces = (s: string) => (s ? s.match(/.{1,8}/gs)! : [])
    if (item.type === 'message') {
      ev('response.output_item.added', { output_index: index, item: { ...item, status: 'in_progress', content: [] } })
      const part = { type: 'output_text', text: '', annotations: [], logprobs: [] }
      ev('response.content_part.added', { item_id: item.id, output_index: index, content_index: 0, part })
      for (const d of reply.chunks ?? content.split(/(?<= )/)) ev('response.output_text.delta', { item_id: item.id, output_index: index, content_index: 0, delta: d, logprobs: [] })
      ev('response.output_text.done', { item_id: item.id, output_index: index, content_index: 0, text: content, logprobs: [] })
      ev('response.content_part.done', { item_id: item.id, output_index: index, content_index: 0, part: item.content[0] })
    } else if (item.type === 'function_call') {
      ev('response.output_item.added', { output_index: index, item: { ...item, arguments: '', status: 'in_progress' } })
      for (const d of pieces(item.arguments)) ev('response.function_call_arguments.delta', { item_id: item.id, output_index: index, delta: d })
      ev('response.function_call_arguments.done', { item_id: item.id, output_index: index, arguments: item.arguments })
    } else if (item.type === 'custom_tool_call') {
      ev('response.output_item.added', { output_index: index, item: { ...item, input: '', status: 'in_progress' } })
      for (const d of pieces(item.input)) ev('response.custom_tool_call_input.delta', { item_id: item.id, output_index: index, delta: d })
      ev('response.custom_tool_call_input.done', { item_id: item.id, output_index: index, input: item.input })
    } else {
      ev('response.output_item.added', { output_index: index, item })
    }
    ev('response.output_item.done', { output_index: index, item })
  })
  ev(`response.${final}`, { response: response(final, items, usage) })
  let sent = 0
  for (const e of events) {
    if (res.destroyed) break
    if (reply.resetAfterChunks !== undefined && sent >= reply.resetAfterChunks) {
      req.socket.destroy()
      break
    }
    res.write(`event: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`)
    sent++
    if (reply.chunkDelayMs) await sleep(reply.chunkDelayMs)
  }
  if (res.destroyed || req.socket.destroyed) return
  fake.served.completion += output
  res.end()
}

function sendError(res: ServerResponse, status: number, err: { message: string; type?: string; code?: string }, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify({ error: { message: err.message, type: err.type ?? 'invalid_request_error', param: null, code: err.code ?? null } }))
}

function promptTokens(body: any): number {
  const text = JSON.stringify(body.messages ?? [])
  return Math.max(1, Math.ceil(text.length / 4))
}

function defaultContent(body: any): string {
  if (body.response_format?.type === 'json_object' || body.response_format?.type === 'json_schema') return '{"answer": 42}'
  const last = [...(body.messages ?? [])].reverse().find((m: any) => m.role === 'user')
  const text = typeof last?.content === 'string' ? last.content : 'your message'
  return `You said: ${text.slice(0, 200)}`
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
