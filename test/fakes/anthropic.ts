/**
 * A loopback fake of Anthropic's Messages API for tests. It checks what the real API checks (x-api-key,
 * anthropic-version, max_tokens, tool_result ↔ tool_use pairing, temperature range, non-empty text) and one
 * thing it no longer does: roles must alternate (today's API merges repeats; a translator should not rely on it),
 * answers deterministically, streams with Anthropic's exact event sequence and SSE framing, simulates prompt
 * caching from the request's cache_control breakpoints, and records every request it received.
 *
 * @example
 * const fake = await startFakeAnthropic()
 * const res = await fetch(`${fake.url}/v1/messages`, { method: 'POST', headers: { 'x-api-key': fake.apiKey, 'anthropic-version': '2023-06-01' }, body })
 * fake.requests[0].body.messages // what was sent
 * await fake.close()
 */
import { createHash } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type {
  AnthropicMessage,
  AnthropicRequest,
  AnthropicStreamEvent,
  AnthropicUsage,
  ContentBlock,
  StopReason,
  TextBlock,
  ToolUseBlock
} from '../../src/providers/anthropic/wire.js'

export interface RecordedRequest {
  method: string
  path: string
  headers: IncomingHttpHeaders
  /** The exact bytes received, as text. */
  raw: string
  /** Parsed JSON body (undefined when it was not JSON). */
  body: AnthropicRequest
  /** True once the client closed the connection before the response was complete. */
  aborted: boolean
  /** Settles when the response finished or the client went away. */
  done: Promise<'complete' | 'aborted'>
}

/** What a script may answer instead of the default behaviour. */
export interface FakeReply {
  /** An error: status and Anthropic error type/message (e.g. 529 overloaded_error). */
  error?: { status: number; type: string; message: string }
  /** Extra response headers (retry-after, request-id). */
  headers?: Record<string, string>
  /** A scripted answer; streamed block by block when the request asked for a stream. */
  content?: ContentBlock[]
  stop_reason?: StopReason
  stop_sequence?: string | null
  /** Overrides the computed usage fields. */
  usage?: Partial<AnthropicUsage>
  /** Raw stream events sent as they are (e.g. an `error` event mid-stream, or a stream cut short). */
  events?: AnthropicStreamEvent[]
  /** Milliseconds to wait before sending headers. */
  delayMs?: number
}

export interface FakeAnthropicOptions {
  /** The key the fake accepts in x-api-key (or as `Authorization: Bearer`). */
  apiKey?: string
  /** Per-request hook: return a reply to override the default answer, or undefined to keep it. */
  script?: (req: RecordedRequest) => FakeReply | undefined | Promise<FakeReply | undefined>
  /** Milliseconds between stream events (default 0). */
  eventDelayMs?: number
  /** Prompt size in (fake) tokens above which the fake answers "prompt is too long". */
  contextWindow?: number
}

export interface FakeAnthropic {
  url: string
  apiKey: string
  requests: RecordedRequest[]
  /** Replace the script between tests. */
  setScript(script: FakeAnthropicOptions['script']): void
  /** TCP connections accepted since the fake started. */
  connectionsOpened(): number
  /** Requests whose response has not closed yet. */
  activeRequests(): number
  close(): Promise<void>
}

/** An error reply in Anthropic's shape, for scripts. */
export function anthropicErrorReply(status: number, type: string, message: string, headers?: Record<string, string>): FakeReply {
  return { error: { status, type, message }, headers }
}

/** Fake token count: about four characters per token, like the real tokenizers on English text. */
export function fakeTokens(text: string): number {
  return Math.ceil(text.length / 4)
}

export async function startFakeAnthropic(opts: FakeAnthropicOptions = {}): Promise<FakeAnthropic> {
  const apiKey = opts.apiKey ?? 'sk-ant-test-key'
  let script = opts.script
  const requests: RecordedRequest[] = []
  const promptCache = new Set<string>()
  let counter = 0

  let active = 0
  const server = createServer((req, res) => {
    active++
    res.on('close', () => active--)
    const parts: Buffer[] = []
    req.on('data', (c: Buffer) => parts.push(c))
    req.on('end', () => {
      const raw = Buffer.concat(parts).toString('utf8')
      let body: AnthropicRequest | undefined
      try {
        body = raw ? JSON.parse(raw) : undefined
      } catch {
        body = undefined
      }
      let settle!: (v: 'complete' | 'aborted') => void
      const record: RecordedRequest = {
        method: req.method ?? '',
        path: req.url ?? '',
        headers: req.headers,
        raw,
        body: body as AnthropicRequest,
        aborted: false,
        done: new Promise((r) => (settle = r))
      }
      res.on('close', () => {
        record.aborted = !res.writableFinished
        settle(record.aborted ? 'aborted' : 'complete')
      })
      requests.push(record)
      handle(record, body, res).catch((err) => {
        if (!res.headersSent) sendError(res, 500, 'api_error', `fake failed: ${(err as Error).message}`)
        else res.destroy()
      })
    })
  })

  async function handle(record: RecordedRequest, body: AnthropicRequest | undefined, res: ServerResponse): Promise<void> {
    const id = `msg_fake${String(++counter).padStart(6, '0')}`
    res.setHeader('request-id', `req_fake${counter}`)
    const countTokens = record.path === '/v1/messages/count_tokens'
    if (record.method !== 'POST' || (record.path !== '/v1/messages' && !countTokens)) {
      return sendError(res, 404, 'not_found_error', `Not Found: ${record.method} ${record.path}`)
    }
    // The 0.x SDKs send x-api-key, the 1.x SDKs `Authorization: Bearer`; the real API takes either.
    const bearer = /^Bearer (.+)$/i.exec(String(record.headers.authorization ?? ''))?.[1]
    if ((record.headers['x-api-key'] ?? bearer) !== apiKey) return sendError(res, 401, 'authentication_error', 'invalid x-api-key')
    if (!record.headers['anthropic-version']) return sendError(res, 400, 'invalid_request_error', 'anthropic-version: header is required')
    if (!body || typeof body !== 'object') return sendError(res, 400, 'invalid_request_error', 'Request body is not valid JSON')
    const invalid = validate(body, countTokens)
    if (invalid) return sendError(res, 400, 'invalid_request_error', invalid)

    const prompt = promptUsage(body, promptCache)
    const promptTotal = prompt.input_tokens + prompt.cache_read_input_tokens + prompt.cache_creation_input_tokens
    if (countTokens) return sendJson(res, 200, { input_tokens: promptTotal })
    const window = opts.contextWindow ?? 200_000
    if (promptTotal > window) return sendError(res, 400, 'invalid_request_error', `prompt is too long: ${promptTotal} tokens > ${window} maximum`)

    const reply = (await script?.(record)) ?? {}
    if (reply.delayMs) await sleep(reply.delayMs)
    for (const [k, v] of Object.entries(reply.headers ?? {})) res.setHeader(k, v)
    if (reply.error) return sendError(res, reply.error.status, reply.error.type, reply.error.message)

    const answer = reply.content ? { content: reply.content, stop_reason: reply.stop_reason ?? guessStop(reply.content), stop_sequence: reply.stop_sequence ?? null } : defaultAnswer(body)
    const message: AnthropicMessage = {
      id,
      type: 'message',
      role: 'assistant',
      model: body.model,
      content: answer.content,
      stop_reason: answer.stop_reason,
      stop_sequence: answer.stop_sequence,
      usage: { ...prompt, output_tokens: outputTokens(answer.content), ...reply.usage }
    }
    if (!body.stream) return sendJson(res, 200, message)

    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' })
    for (const ev of reply.events ?? streamEvents(message)) {
      if (res.destroyed) return
      res.write(`event: ${ev.type}\ndata: ${JSON.stringify(ev)}\n\n`)
      if (opts.eventDelayMs) await sleep(opts.eventDelayMs)
    }
    res.end()
  }

  let opened = 0
  server.on('connection', () => opened++)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    connectionsOpened: () => opened,
    activeRequests: () => active,
    url: `http://127.0.0.1:${port}`,
    apiKey,
    requests,
    setScript: (s) => {
      script = s
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

/** The checks the real API makes that a translator is most likely to get wrong. */
function validate(body: AnthropicRequest, countTokens: boolean): string | undefined {
  if (typeof body.model !== 'string' || body.model === '') return 'model: Field required'
  if (!countTokens && (!Number.isInteger(body.max_tokens) || body.max_tokens < 1)) return 'max_tokens: Field required'
  if (!Array.isArray(body.messages) || body.messages.length === 0) return 'messages: at least one message is required'
  if (body.temperature !== undefined && (body.temperature < 0 || body.temperature > 1)) return 'temperature: Input should be less than or equal to 1'
  if (body.system !== undefined && typeof body.system !== 'string') {
    if (!Array.isArray(body.system) || body.system.some((b) => b.type !== 'text')) return 'system: Input should be a valid list of text blocks'
  }
  if (body.tool_choice && !body.tools?.length) return 'tool_choice may only be specified while providing tools.'
  let prevToolUses: string[] = []
  for (const [i, m] of body.messages.entries()) {
    if (m.role !== 'user' && m.role !== 'assistant') return `messages.${i}.role: Input should be 'user' or 'assistant'`
    if (i > 0 && body.messages[i - 1]!.role === m.role) return 'messages: roles must alternate between "user" and "assistant", but found multiple "' + m.role + '" roles in a row'
    const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content } as TextBlock] : m.content
    if (!Array.isArray(blocks)) return `messages.${i}.content: Input should be a valid list`
    for (const b of blocks) {
      if (b.type === 'text' && (b as TextBlock).text === '') return `messages.${i}: text content blocks must be non-empty`
      if (b.type === 'tool_result' && !prevToolUses.includes(String(b.tool_use_id))) {
        return `messages.${i}.content: unexpected \`tool_use_id\` found in \`tool_result\` blocks: ${String(b.tool_use_id)}. Each \`tool_result\` block must have a corresponding \`tool_use\` block in the previous message.`
      }
      if (b.type === 'tool_use' && (typeof b.input !== 'object' || b.input === null || Array.isArray(b.input))) return `messages.${i}: tool_use.input: Input should be a valid dictionary`
      if (b.type === 'image') {
        const src = (b as { source?: { type?: string; media_type?: string; data?: string; url?: string } }).source
        if (!src || (src.type === 'base64' ? !src.media_type || !src.data : src.type === 'url' ? !src.url : true)) return `messages.${i}: image.source: invalid image source`
      }
    }
    if (m.role === 'user' && prevToolUses.length > 0) {
      const answered = blocks.filter((b) => b.type === 'tool_result').map((b) => String(b.tool_use_id))
      const missing = prevToolUses.filter((id) => !answered.includes(id))
      if (missing.length > 0) return `messages.${i}: \`tool_use\` ids were found without \`tool_result\` blocks immediately after: ${missing.join(', ')}`
    }
    prevToolUses = m.role === 'assistant' ? blocks.filter((b) => b.type === 'tool_use').map((b) => String(b.id)) : []
  }
  return undefined
}

/**
 * Prompt usage with simulated prompt caching, following Anthropic's rules: the prefix (tools, system, messages
 * in that order) up to each cache_control breakpoint is written to the cache; a read is the longest prefix
 * already cached that ends at a breakpoint or up to 20 blocks before one; tokens between the read and the
 * last breakpoint are a cache write, tokens after the last breakpoint are plain input.
 */
function promptUsage(body: AnthropicRequest, cache: Set<string>): { input_tokens: number; cache_creation_input_tokens: number; cache_read_input_tokens: number } {
  const pieces: { text: string; marked: boolean }[] = []
  for (const t of body.tools ?? []) pieces.push({ text: JSON.stringify(t), marked: !!t.cache_control })
  const system = typeof body.system === 'string' ? [{ type: 'text', text: body.system } as TextBlock] : (body.system ?? [])
  for (const b of system) pieces.push({ text: b.text, marked: !!b.cache_control })
  for (const m of body.messages) {
    const blocks = typeof m.content === 'string' ? [{ type: 'text', text: m.content } as ContentBlock] : m.content
    for (const b of blocks) pieces.push({ text: b.type === 'text' ? String(b.text) : JSON.stringify({ ...b, cache_control: undefined }), marked: !!b.cache_control })
  }
  const total = fakeTokens(pieces.map((p) => p.text).join(''))
  const breakpoints = pieces.flatMap((p, i) => (p.marked ? [i] : []))
  if (breakpoints.length === 0) return { input_tokens: total, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 }
  const prefixText = (end: number) => pieces.slice(0, end + 1).map((p) => p.text).join('')
  const keyOf = (end: number) => createHash('sha256').update(body.model).update('\0').update(prefixText(end)).digest('hex')

  let readEnd = -1
  for (const b of breakpoints) {
    for (let k = b; k >= Math.max(0, b - 19); k--) if (k > readEnd && cache.has(keyOf(k))) readEnd = k
  }
  const lastBreakpoint = breakpoints[breakpoints.length - 1]!
  for (const b of breakpoints) cache.add(keyOf(b))
  const read = readEnd >= 0 ? fakeTokens(prefixText(readEnd)) : 0
  const written = readEnd >= lastBreakpoint ? 0 : fakeTokens(prefixText(lastBreakpoint)) - read
  return { input_tokens: total - read - written, cache_creation_input_tokens: written, cache_read_input_tokens: read }
}

/**
 * The default deterministic answer: a tool call when tools are given and either tool_choice forces one or the
 * last user text names a tool (several named tools → parallel calls unless disabled); otherwise
 * "Echo: <last user text>". Stop sequences and max_tokens cut the text the way the real API does.
 */
function defaultAnswer(body: AnthropicRequest): { content: ContentBlock[]; stop_reason: StopReason; stop_sequence: string | null } {
  const last = body.messages[body.messages.length - 1]!
  const blocks = typeof last.content === 'string' ? [{ type: 'text', text: last.content } as ContentBlock] : last.content
  const text = blocks.filter((b): b is TextBlock => b.type === 'text').map((b) => b.text).join(' ')
  const toolResults = blocks.filter((b) => b.type === 'tool_result')
  const tools = body.tools ?? []
  const choice = body.tool_choice
  if (tools.length > 0 && toolResults.length === 0 && choice?.type !== 'none') {
    let chosen = tools.filter((t) => text.includes(t.name))
    if (choice?.type === 'tool') chosen = tools.filter((t) => t.name === choice.name)
    else if (choice?.type === 'any' && chosen.length === 0) chosen = tools.slice(0, 1)
    if (choice && 'disable_parallel_tool_use' in choice && choice.disable_parallel_tool_use) chosen = chosen.slice(0, 1)
    if (chosen.length > 0) {
      const content: ContentBlock[] = [{ type: 'text', text: `Calling ${chosen.map((t) => t.name).join(' and ')}.` }]
      chosen.forEach((t, i) => content.push({ type: 'tool_use', id: `toolu_fake${i}_${t.name}`, name: t.name, input: sampleInput(t.input_schema, text) }))
      return { content, stop_reason: 'tool_use', stop_sequence: null }
    }
  }
  let answer = toolResults.length > 0 ? `Tool said: ${toolResults.map((b) => resultText(b.content)).join('; ')}` : `Echo: ${text}`
  for (const stop of body.stop_sequences ?? []) {
    const at = answer.indexOf(stop)
    if (at >= 0) return { content: nonEmpty(answer.slice(0, at)), stop_reason: 'stop_sequence', stop_sequence: stop }
  }
  const words = answer.match(/\S+\s*/g) ?? []
  if (words.length > body.max_tokens) {
    answer = words.slice(0, body.max_tokens).join('')
    return { content: nonEmpty(answer), stop_reason: 'max_tokens', stop_sequence: null }
  }
  return { content: nonEmpty(answer), stop_reason: 'end_turn', stop_sequence: null }
}

function nonEmpty(text: string): ContentBlock[] {
  return text === '' ? [] : [{ type: 'text', text }]
}

function resultText(content: unknown): string {
  if (typeof content === 'string') return content
  if (Array.isArray(content)) return content.filter((b) => b?.type === 'text').map((b) => b.text).join(' ')
  return ''
}

/** An input object that satisfies a simple JSON schema: strings get the prompt, numbers 1, booleans true. */
function sampleInput(schema: Record<string, unknown>, text: string): Record<string, unknown> {
  const props = (schema.properties ?? {}) as Record<string, { type?: string; enum?: unknown[] }>
  const out: Record<string, unknown> = {}
  for (const [name, p] of Object.entries(props)) {
    if (p.enum?.length) out[name] = p.enum[0]
    else if (p.type === 'number' || p.type === 'integer') out[name] = 1
    else if (p.type === 'boolean') out[name] = true
    else if (p.type === 'array') out[name] = []
    else if (p.type === 'object') out[name] = {}
    else out[name] = text
  }
  return out
}

function guessStop(content: ContentBlock[]): StopReason {
  return content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn'
}

/** One "token" per word for text; tool input by the four-characters rule. */
function outputTokens(content: ContentBlock[]): number {
  let n = 0
  for (const b of content) {
    if (b.type === 'text') n += ((b as TextBlock).text.match(/\S+\s*/g) ?? []).length
    else if (b.type === 'tool_use') n += fakeTokens(JSON.stringify((b as ToolUseBlock).input))
  }
  return n
}

/** Anthropic's event sequence for a finished message, text in word deltas and tool input in JSON fragments. */
function streamEvents(message: AnthropicMessage): AnthropicStreamEvent[] {
  const { input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens } = message.usage
  const events: AnthropicStreamEvent[] = [
    {
      type: 'message_start',
      message: { ...message, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens: 1 } }
    }
  ]
  message.content.forEach((block, index) => {
    if (block.type === 'text') {
      events.push({ type: 'content_block_start', index, content_block: { type: 'text', text: '' } })
      if (index === 0) events.push({ type: 'ping' })
      for (const word of (block as TextBlock).text.match(/\S+\s*|\s+/g) ?? []) events.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: word } })
    } else if (block.type === 'tool_use') {
      const b = block as ToolUseBlock
      events.push({ type: 'content_block_start', index, content_block: { type: 'tool_use', id: b.id, name: b.name, input: {} } })
      if (index === 0) events.push({ type: 'ping' })
      const json = JSON.stringify(b.input)
      events.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: '' } })
      if (json !== '{}') {
        const step = Math.max(1, Math.ceil(json.length / 3))
        for (let i = 0; i < json.length; i += step) events.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: json.slice(i, i + step) } })
      }
    } else {
      events.push({ type: 'content_block_start', index, content_block: block })
    }
    events.push({ type: 'content_block_stop', index })
  })
  events.push({
    type: 'message_delta',
    delta: { stop_reason: message.stop_reason, stop_sequence: message.stop_sequence },
    usage: { input_tokens, cache_creation_input_tokens, cache_read_input_tokens, output_tokens }
  })
  events.push({ type: 'message_stop' })
  return events
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function sendError(res: ServerResponse, status: number, type: string, message: string): void {
  sendJson(res, status, { type: 'error', error: { type, message }, request_id: String(res.getHeader('request-id') ?? '') })
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}
