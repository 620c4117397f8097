import { EventEmitter } from 'node:events'
import { Pool, errors as undiciErrors } from 'undici'
import type { Dispatcher } from 'undici'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { abortFromSignal, type RequestAbort } from '../abort.js'
import { UpstreamError } from '../errors.js'
import type { CallOptions } from './types.js'

export interface UpstreamOptions {
  baseUrl: string
  headers: Record<string, string>
  connectTimeoutMs: number
  firstByteTimeoutMs: number
  totalTimeoutMs: number
  maxConnections: number
  /** Maps an upstream error body to message/code/kind; each wire protocol has its own shape. */
  parseError: (status: number, body: string) => { message: string; type?: string; code?: string | null; kind?: UpstreamError['kind'] }
  /** Name used in error messages ("openai upstream"). */
  label: string
}

export interface UpstreamResponse {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Dispatcher.ResponseData['body']
}

/** An HTTP client for one upstream origin: one keep-alive undici Pool, timeouts, abort and error mapping. */
export interface Upstream {
  /** POST JSON; resolves once a 2xx status and headers arrived, rejects with UpstreamError otherwise. */
  post(path: string, body: string, opts: CallOptions): Promise<UpstreamResponse>
  close(): Promise<void>
}

/**
 * Create the HTTP client for one provider. All upstream traffic goes through undici pools, one per origin.
 *
 * @example
 * const up = createUpstream({ baseUrl: 'https://api.openai.com/v1', headers: { authorization: 'Bearer …' }, ... })
 * const res = await up.post('/chat/completions', JSON.stringify(req), { signal })
 */
export function createUpstream(opts: UpstreamOptions): Upstream {
  const base = new URL(opts.baseUrl)
  const basePath = base.pathname.replace(/\/+$/, '')
  const pool = new Pool(base.origin, {
    connections: opts.maxConnections,
    connect: { timeout: opts.connectTimeoutMs },
    keepAliveTimeout: 30_000,
    pipelining: 1
  })
  const baseHeaders = { 'content-type': 'application/json', accept: 'application/json', ...opts.headers }
  // Upstream error messages reach clients; some compatible servers echo the credential they were sent.
  const secrets = Object.entries(opts.headers)
    .filter(([name]) => /auth|key|token|secret/i.test(name))
    .flatMap(([, v]) => [v, v.replace(/^Bearer\s+/i, '')])
    .filter((v) => v.length >= 8)
  const redact = (message: string) => secrets.reduce((m, secret) => m.split(secret).join('[redacted]'), message)

  return {
    async post(path, body, call) {
      const total = call.totalTimeoutMs ?? opts.totalTimeoutMs
      const client = clientAbortOf(call)
      const { signal, done } = callSignal(client, total)
      let res: Dispatcher.ResponseData
      try {
        res = await pool.request({
          path: basePath + path,
          method: 'POST',
          headers: call.headers ? { ...baseHeaders, ...call.headers } : baseHeaders,
          body,
          signal,
          headersTimeout: call.firstByteTimeoutMs ?? opts.firstByteTimeoutMs,
          bodyTimeout: opts.firstByteTimeoutMs
        })
      } catch (err) {
        done()
        throw mapTransportError(err, client, opts.label)
      }
      // the total timeout covers the body too: the timer and listener go when it is read, fails or is destroyed
      if (res.body.closed) done()
      else res.body.once('close', done)
      if (res.statusCode >= 200 && res.statusCode < 300) {
        return { status: res.statusCode, headers: res.headers, body: res.body }
      }
      let text = ''
      try {
        text = await res.body.text()
      } catch {
        // the status is what matters; a broken error body must not hide it
      }
      const parsed = opts.parseError(res.statusCode, text)
      const status = res.statusCode
      throw new UpstreamError(status >= 400 && status < 600 ? status : 502, redact(parsed.message), {
        type: parsed.type,
        code: parsed.code ?? null,
        kind: parsed.kind ?? (status === 429 ? 'rate_limit' : 'http'),
        retryAfterMs: parseRetryAfter(res.headers['retry-after'])
      })
    },
    close: () => pool.close()
  }
}

/**
 * What undici takes as a request's `signal` besides an AbortSignal: an EventEmitter that emits `abort` and says
 * `aborted` and `reason` (undici's documented `AbortSignal | EventEmitter`).
 */
interface CallAbort extends EventEmitter {
  aborted: boolean
  reason: unknown
}

/**
 * The signal one upstream call runs under: aborted with the caller's reason when `outer` aborts, or with a
 * `TimeoutError` (as `AbortSignal.timeout` gives) after `totalMs`. One emitter and one timer, both let go by
 * `done()`. An emitter, not an AbortController: making an AbortSignal costs about 5 µs on Node 20 (an
 * EventTarget and its bookkeeping), an EventEmitter about 0.2, and this one goes nowhere but to undici.
 */
function callSignal(outer: RequestAbort, totalMs: number): { signal: CallAbort; done: () => void } {
  const signal = new EventEmitter() as CallAbort
  signal.aborted = false
  signal.reason = undefined
  const abort = (reason: unknown) => {
    if (signal.aborted) return
    signal.aborted = true
    signal.reason = reason
    signal.emit('abort')
  }
  if (outer.aborted) {
    abort(outer.reason)
    return { signal, done: () => {} }
  }
  const onAbort = () => abort(outer.reason)
  const off = outer.onAbort(onAbort)
  const timer = setTimeout(() => abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')), totalMs)
  // like AbortSignal.timeout's, the timer alone does not keep the process up
  timer.unref()
  let finished = false
  const done = () => {
    if (finished) return
    finished = true
    clearTimeout(timer)
    off()
  }
  return { signal, done }
}

/**
 * How a provider call hears that its client went away: the gateway's request abort when it gave one (reading
 * `call.signal` would make the AbortSignal it exists to avoid), else the caller's own signal.
 *
 * @example
 * return readJson<ChatCompletion>(res, label, clientAbortOf(opts))
 */
export function clientAbortOf(call: CallOptions): RequestAbort {
  return call.abort ?? abortFromSignal(call.signal)
}

/** Whether the client went away, read when a transfer fails: an AbortSignal, or the gateway's request abort. */
export interface ClientGone {
  readonly aborted: boolean
}

/** Read a whole response body as JSON, mapping failures to a 502 protocol error. */
export async function readJson<T>(res: UpstreamResponse, label: string, signal: ClientGone): Promise<T> {
  let text: string
  try {
    text = await res.body.text()
  } catch (err) {
    throw mapTransportError(err, signal, label)
  }
  try {
    return JSON.parse(text) as T
  } catch {
    throw new UpstreamError(502, `${label} returned a body that is not valid JSON`, { kind: 'protocol', code: 'bad_upstream_response', retryable: true })
  }
}

/** How long the end of a body may take after its last event before the connection is given up. */
const BODY_END_GRACE_MS = 5_000

/**
 * Parse an SSE body into events as they arrive (eventsource-parser does the framing).
 *
 * A consumer that stops early (the client left, a guard ended the stream) destroys the body, which aborts the
 * upstream request so the provider stops generating. One that stops at the protocol's last event (`isLast`:
 * `[DONE]`, `message_stop`) lets the rest of the body be read instead: providers often send the end of the
 * HTTP body a packet later, and destroying the body before it arrived closed the keep-alive connection, so
 * every streamed request opened a new one (a TCP and TLS handshake to the provider each time).
 *
 * @example
 * for await (const ev of sseEvents(res, 'openai', signal, (ev) => ev.data === '[DONE]')) ...
 */
export async function* sseEvents(
  res: UpstreamResponse,
  label: string,
  signal: ClientGone,
  isLast?: (ev: EventSourceMessage) => boolean
): AsyncGenerator<EventSourceMessage> {
  const queue: EventSourceMessage[] = []
  const parser = createParser({ onEvent: (ev) => queue.push(ev) })
  const decoder = new TextDecoder()
  let ended = false
  let bytes = 0
  try {
    // destroyOnReturn: false, so that stopping after the last event does not destroy the body (see above)
    for await (const chunk of res.body.iterator({ destroyOnReturn: false })) {
      bytes += (chunk as Uint8Array).byteLength
      parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }))
      while (queue.length > 0) {
        const ev = queue.shift()!
        if (isLast?.(ev)) ended = true
        yield ev
      }
    }
    parser.feed(decoder.decode())
    while (queue.length > 0) yield queue.shift()!
  } catch (err) {
    throw mapTransportError(err, signal, label)
  } finally {
    if (!res.body.destroyed && !res.body.readableEnded) {
      if (ended) readRest(res.body, bytes)
      // the iterator took its error listener with it: undici's abort error would be an uncaught 'error' event
      else res.body.on('error', () => {}).destroy()
    }
  }
}

/** Reads and drops what is left of a body (up to 64 KiB more, for a few seconds), so its connection is reused. */
function readRest(body: UpstreamResponse['body'], bytesRead: number): void {
  const timer = setTimeout(() => body.destroy(), BODY_END_GRACE_MS)
  timer.unref()
  // dump() counts every byte the body has read, not only those after the call
  body
    .dump({ limit: bytesRead + 65_536 })
    .catch(() => {})
    .finally(() => clearTimeout(timer))
}

function mapTransportError(err: unknown, clientSignal: ClientGone, label: string): UpstreamError {
  if (err instanceof UpstreamError) return err
  if (clientSignal.aborted) return new UpstreamError(499, 'Client closed the request', { kind: 'aborted', retryable: false, code: 'client_closed' })
  const e = err as { name?: string; code?: string; message?: string }
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.BodyTimeoutError || e.name === 'TimeoutError' || e.name === 'AbortError') {
    return new UpstreamError(504, `${label} timed out`, { kind: 'timeout', code: 'upstream_timeout', retryable: true })
  }
  if (err instanceof undiciErrors.ConnectTimeoutError || e.code === 'ECONNREFUSED' || e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') {
    return new UpstreamError(502, `${label} could not be reached`, { kind: 'connect', code: 'upstream_unreachable', retryable: true })
  }
  return new UpstreamError(502, `${label} connection failed: ${e.code ?? 'socket error'}`, { kind: 'connect', code: 'upstream_connection_error', retryable: true })
}

/** Retry-After as seconds or an HTTP date, in milliseconds. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value
  if (!v) return undefined
  const secs = Number(v)
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000)
  const date = Date.parse(v)
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now())
}
