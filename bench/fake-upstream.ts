/**
 * A fast fake of OpenAI's chat-completions and embeddings API, for benchmarks only (tests have their own
 * fakes in test/). It does as little work as it can so that the process under test, not the fake, is what
 * a benchmark measures.
 *
 * Behaviour per request, first match wins:
 *   1. query string: `?tokens=20&delay_ms=5&chunk_delay_ms=2`
 *   2. a profile in the model name after `@`: `"model": "gpt-4o-mini@tokens=20,chunk_delay_ms=2"`
 *      (this is how a gateway, which forwards neither query nor headers, is told what to ask for)
 *   3. environment: FAKE_TOKENS (default 16), FAKE_DELAY_MS (0), FAKE_CHUNK_DELAY_MS (0), FAKE_EMBED_DIMS (256)
 * A request's `max_tokens` / `max_completion_tokens` caps the completion length, as a real model's would.
 *
 * Run: `node --import tsx bench/fake-upstream.ts --port 0`; prints `{"listening":PORT}` on stdout (and sends
 * the same over IPC when forked) once it listens.
 *
 * @example
 * curl -s localhost:PORT/v1/chat/completions -d '{"model":"m@tokens=3","messages":[],"stream":true}'
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'
import { announceListening } from './lib/procs.js'

interface Behaviour {
  tokens: number
  delayMs: number
  chunkDelayMs: number
  embedDims: number
}

const envBehaviour: Behaviour = {
  tokens: intOr(process.env.FAKE_TOKENS, 16),
  delayMs: intOr(process.env.FAKE_DELAY_MS, 0),
  chunkDelayMs: intOr(process.env.FAKE_CHUNK_DELAY_MS, 0),
  embedDims: intOr(process.env.FAKE_EMBED_DIMS, 256)
}

function intOr(v: string | null | undefined, fallback: number): number {
  if (v === undefined || v === null || v === '') return fallback
  const n = Number(v)
  return Number.isFinite(n) && n >= 0 ? Math.floor(n) : fallback
}

const KEYS: Record<string, keyof Behaviour> = {
  tokens: 'tokens',
  delay_ms: 'delayMs',
  chunk_delay_ms: 'chunkDelayMs',
  dims: 'embedDims'
}

/** Overlay `key=value` pairs (from a query string or a model profile) onto the env defaults. */
function behaviourFrom(pairs: Iterable<[string, string]>): Behaviour {
  const b = { ...envBehaviour }
  for (const [k, v] of pairs) {
    const field = KEYS[k]
    if (field) b[field] = intOr(v, b[field])
  }
  return b
}

function modelProfile(model: string): { name: string; pairs: [string, string][] } {
  const at = model.indexOf('@')
  if (at < 0) return { name: model, pairs: [] }
  const pairs = model
    .slice(at + 1)
    .split(',')
    .map((kv) => kv.split('=') as [string, string])
    .filter((kv) => kv.length === 2)
  return { name: model, pairs }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms))

// Completion text is "tok tok tok…": one word per token, so counts stay honest for gateways that count.
const contentFor = (n: number) => 'tok '.repeat(n).trimEnd()

/** Cache of serialised non-stream bodies: the fake should not spend CPU the gateway would be blamed for. */
const completionCache = new Map<string, string>()
let seq = 0

function completionBody(model: string, promptTokens: number, tokens: number): string {
  const key = `${model}\u0000${promptTokens}\u0000${tokens}`
  let body = completionCache.get(key)
  if (body === undefined) {
    body = JSON.stringify({
      id: 'chatcmpl-fake',
      object: 'chat.completion',
      created: 1_700_000_000,
      model,
      choices: [{ index: 0, message: { role: 'assistant', content: contentFor(tokens) }, finish_reason: 'stop' }],
      usage: { prompt_tokens: promptTokens, completion_tokens: tokens, total_tokens: promptTokens + tokens }
    })
    if (completionCache.size > 10_000) completionCache.clear()
    completionCache.set(key, body)
  }
  return body
}

function chunkLine(model: string, delta: Record<string, unknown>, finish: string | null, usage?: unknown): string {
  return `data: ${JSON.stringify({
    id: 'chatcmpl-fake',
    object: 'chat.completion.chunk',
    created: 1_700_000_000,
    model,
    choices: finish === 'usage' ? [] : [{ index: 0, delta, finish_reason: finish }],
    ...(usage === undefined ? {} : { usage })
  })}\n\n`
}

/** Rough prompt size: about four bytes per token, like tiktoken on English text. */
const promptTokensOf = (raw: string) => Math.max(1, Math.ceil(raw.length / 4))

async function chat(req: Record<string, unknown>, raw: string, b: Behaviour, res: ServerResponse): Promise<void> {
  const model = typeof req.model === 'string' ? req.model : 'fake'
  const cap = Number(req.max_completion_tokens ?? req.max_tokens)
  const tokens = Number.isFinite(cap) && cap > 0 ? Math.min(cap, b.tokens) : b.tokens
  const promptTokens = promptTokensOf(raw)
  if (b.delayMs > 0) await sleep(b.delayMs)

  if (req.stream !== true) {
    const body = completionBody(model, promptTokens, tokens)
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
    return
  }

  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
  res.write(chunkLine(model, { role: 'assistant', content: '' }, null))
  for (let i = 0; i < tokens; i++) {
    if (b.chunkDelayMs > 0) await sleep(b.chunkDelayMs)
    if (res.destroyed) return
    res.write(chunkLine(model, { content: i === 0 ? 'tok' : ' tok' }, null))
  }
  res.write(chunkLine(model, {}, 'stop'))
  const opts = req.stream_options as { include_usage?: boolean } | undefined
  if (opts?.include_usage) {
    const usage = { prompt_tokens: promptTokens, completion_tokens: tokens, total_tokens: promptTokens + tokens }
    res.write(chunkLine(model, {}, 'usage', usage))
  }
  res.end('data: [DONE]\n\n')
}

/** Deterministic unit-length vectors from the input text, so equal inputs embed equally. */
function embedOne(text: string, dims: number): number[] {
  const v = new Array<number>(dims)
  let h = 2166136261
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619)
  let norm = 0
  for (let i = 0; i < dims; i++) {
    h = Math.imul(h ^ (h >>> 15), 2246822507) ^ i
    const x = ((h >>> 0) / 4294967296) * 2 - 1
    v[i] = x
    norm += x * x
  }
  const inv = 1 / Math.sqrt(norm)
  for (let i = 0; i < dims; i++) v[i] = v[i]! * inv
  return v
}

function embeddings(req: Record<string, unknown>, b: Behaviour, res: ServerResponse): void {
  const inputs = Array.isArray(req.input) ? req.input : [req.input]
  const dims = typeof req.dimensions === 'number' && req.dimensions > 0 ? req.dimensions : b.embedDims
  let tokens = 0
  const data = inputs.map((input, index) => {
    const text = typeof input === 'string' ? input : JSON.stringify(input)
    tokens += promptTokensOf(text)
    return { object: 'embedding', index, embedding: embedOne(text, dims) }
  })
  const body = JSON.stringify({
    object: 'list',
    data,
    model: typeof req.model === 'string' ? req.model : 'fake-embedding',
    usage: { prompt_tokens: tokens, total_tokens: tokens }
  })
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

function sendError(res: ServerResponse, status: number, message: string): void {
  const body = JSON.stringify({ error: { message, type: 'invalid_request_error', code: null } })
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  seq++
  const qIndex = req.url?.indexOf('?') ?? -1
  const path = qIndex >= 0 ? req.url!.slice(0, qIndex) : (req.url ?? '/')
  const query = qIndex >= 0 ? new URLSearchParams(req.url!.slice(qIndex + 1)) : undefined

  if (req.method === 'GET') {
    if (path.endsWith('/models')) {
      const body = JSON.stringify({ object: 'list', data: [{ id: 'fake', object: 'model', created: 0, owned_by: 'bench' }] })
      res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    } else if (path === '/stats') {
      const body = JSON.stringify({ requests: seq, cpu: process.cpuUsage(), rss: process.memoryUsage.rss() })
      res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    } else {
      sendError(res, 404, `no route ${path}`)
    }
    return
  }

  const parts: Buffer[] = []
  for await (const part of req) parts.push(part as Buffer)
  const raw = Buffer.concat(parts).toString('utf8')
  let body: Record<string, unknown>
  try {
    body = JSON.parse(raw) as Record<string, unknown>
  } catch {
    sendError(res, 400, 'body is not JSON')
    return
  }
  const model = typeof body.model === 'string' ? body.model : ''
  const b = query ? behaviourFrom(query) : behaviourFrom(modelProfile(model).pairs)

  if (path.endsWith('/chat/completions')) await chat(body, raw, b, res)
  else if (path.endsWith('/embeddings')) embeddings(body, b, res)
  else sendError(res, 404, `no route ${path}`)
}

/**
 * Start the fake on 127.0.0.1.
 *
 * @example
 * const { port, close } = await startFakeUpstream(0)
 */
export async function startFakeUpstream(port: number): Promise<{ port: number; close: () => Promise<void> }> {
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 500, String(err))
      else res.destroy()
    })
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const addr = server.address()
  const actual = typeof addr === 'object' && addr ? addr.port : port
  return { port: actual, close: () => new Promise((r) => server.close(() => r())) }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { port: { type: 'string', default: process.env.PORT ?? '0' } } })
  const { port } = await startFakeUpstream(Number(values.port))
  announceListening(port)
}
