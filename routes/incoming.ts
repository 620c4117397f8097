import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Context } from 'hono'
import { createRequestAbort, type RequestAbortController } from '../src/abort.js'

/**
 * Reading a request straight from Node's IncomingMessage when @hono/node-server serves it.
 *
 * node-server hands Hono a lightweight request and builds the real WHATWG Request (a Headers object, an
 * AbortController, the body as a web stream over the socket) the first time `c.req.raw.body`, `.signal` or
 * `.text()` is touched. On a cached answer that build was about a fifth of the gateway's CPU. These helpers
 * give the same values without it, and fall back to Hono's own API when there is no Node request (tests
 * through `app.request`).
 *
 * Something may build the Request anyway (a middleware reading `c.req.raw.signal`). Headers, the content length
 * and the disconnect still come from Node then: the Request was built from the same header list (its headers
 * cannot be changed) and node-server aborts it on the same `close`. Only the body is the Request's once it is
 * built, since its stream may be reading the socket: `requestText` checks for that, and only it does (listing
 * the request's symbols allocates, and the other helpers run five times a request).
 */
interface NodeEnv {
  incoming: IncomingMessage
  outgoing: ServerResponse
}

/** The Node request and response, when node-server serves this request. */
function nodeOf(c: Context): NodeEnv | undefined {
  const env = c.env as Partial<NodeEnv> | undefined
  if (!env?.incoming || !env.outgoing) return undefined
  return env as NodeEnv
}

/** node-server keeps the built Request under its own symbol `requestCache`. */
function built(raw: Request): boolean {
  for (const s of Object.getOwnPropertySymbols(raw)) if (s.description === 'requestCache') return true
  return false
}

/**
 * The request headers as a record (lower-case names, repeated headers joined with ", "), as
 * `c.req.header()` returns them.
 *
 * @example
 * gateway.chat({ headers: requestHeaders(c), ... })
 */
export function requestHeaders(c: Context): Record<string, string> {
  const node = nodeOf(c)
  if (!node) return c.req.header()
  const raw = node.incoming.rawHeaders
  const out: Record<string, string> = {}
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase()
    if (name.charCodeAt(0) === 58 /* ':' HTTP/2 pseudo-header */) continue
    // llhttp already dropped the whitespace around values that Headers would strip
    const value = raw[i + 1]!
    const seen = out[name]
    out[name] = seen === undefined ? value : `${seen}, ${value}`
  }
  return out
}

/**
 * One request header (name in lower case) as `c.req.header(name)` returns it.
 *
 * @example
 * requestHeader(c, 'content-type')
 */
export function requestHeader(c: Context, name: string): string | undefined {
  const node = nodeOf(c)
  if (!node) return c.req.header(name)
  const raw = node.incoming.rawHeaders
  let out: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length === name.length && raw[i]!.toLowerCase() === name) out = out === undefined ? raw[i + 1]! : `${out}, ${raw[i + 1]!}`
  }
  return out
}

/**
 * Aborted when the client goes away before the response is finished, with node-server's reasons.
 *
 * @example
 * gateway.chat({ signal: requestSignal(c), ... })
 */
export function requestSignal(c: Context): AbortSignal {
  const a = requestAbort(c)
  return a.abort ? a.abort.signal : a.signal
}

/**
 * Aborted when the client goes away: a request abort of our own (spread into `gateway.chat` or `gateway.embeddings`,
 * which then aborts that same one on shutdown instead of chaining a second), or Hono's request signal where
 * there is no Node request. It makes no AbortSignal unless one is read (src/abort.ts): the upstream call
 * subscribes without one, and an exact-cache hit never asks.
 *
 * @example
 * gateway.chat({ ...requestAbort(c), headers, body, surface: 'chat' })
 */
export function requestAbort(c: Context): { signal: AbortSignal; abort?: undefined } | { abort: RequestAbortController; signal?: undefined } {
  const node = nodeOf(c)
  if (!node) return { signal: c.req.raw.signal }
  const controller = createRequestAbort()
  node.outgoing.once('close', () => {
    if (node.incoming.errored) controller.abort(node.incoming.errored.toString())
    else if (!node.outgoing.writableFinished) controller.abort('Client connection prematurely closed.')
  })
  return { abort: controller }
}

/**
 * The request body as text (UTF-8, a leading BOM dropped as `Request.text()` does). Also fills Hono's
 * body cache, so a later `c.req.text()` or `c.req.json()` still works.
 *
 * @example
 * const raw = JSON.parse(await requestText(c))
 */
export async function requestText(c: Context): Promise<string> {
  const node = nodeOf(c)
  const incoming = node?.incoming as (IncomingMessage & { rawBody?: unknown }) | undefined
  // anything that started reading the socket, or a built Request's body stream, owns the body; rawBody:
  // node-server reads that instead
  if (!incoming || incoming.readableDidRead || incoming.readableFlowing !== null || incoming.rawBody !== undefined || built(c.req.raw)) {
    return c.req.text()
  }
  const text = new Promise<string>((resolve, reject) => {
    const chunks: Buffer[] = []
    incoming.on('data', (b: Buffer) => chunks.push(b))
    incoming.once('end', () => {
      const s = (chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)).toString('utf8')
      resolve(s.charCodeAt(0) === 0xfeff ? s.slice(1) : s)
    })
    incoming.once('error', reject)
    incoming.once('close', () => {
      if (!incoming.complete) reject(new Error('Client connection prematurely closed.'))
    })
  })
  // Hono's cache holds the promise under the method's name (its type says the method)
  ;(c.req.bodyCache as Record<string, unknown>).text = text
  return text
}

/**
 * The body length a request declares: its Content-Length, 0 for GET and HEAD (node-server gives them no body),
 * undefined where the length is not known before the body is read (chunked). As Hono's `bodyLimit` reads it.
 *
 * @example
 * const length = declaredBodyLength(req, env.incoming)
 * if (length !== undefined && length > maxBytes) return tooLarge()
 */
export function declaredBodyLength(req: Request, incoming: IncomingMessage | undefined): number | undefined {
  if (incoming) {
    const method = incoming.method
    if (method === 'GET' || method === 'HEAD') return 0
    const length = incoming.headers['content-length']
    if (length === undefined || incoming.headers['transfer-encoding'] !== undefined) return undefined
    return parseInt(length || '0', 10)
  }
  if (!req.body) return 0
  const length = req.headers.get('content-length')
  if (length === null || req.headers.has('transfer-encoding')) return undefined
  return parseInt(length || '0', 10)
}

/**
 * Read a body of unknown length (chunked) up to `maxBytes`, as Hono's `bodyLimit` does: a copy of the request
 * carrying the body read, or undefined once the body is past the bound (the rest is left unread).
 *
 * @example
 * const bounded = await readBoundedBody(req, 1 << 20)
 * if (!bounded) return tooLarge()
 */
export async function readBoundedBody(req: Request, maxBytes: number): Promise<Request | undefined> {
  if (!req.body) return req
  const reader = req.body.getReader()
  let size = 0
  let buffer = new Uint8Array(0)
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    const offset = size
    size += value.length
    if (size > maxBytes) return undefined
    if (size > buffer.length) {
      const grown = new Uint8Array(Math.min(maxBytes, Math.max(size, buffer.length * 2)))
      grown.set(buffer.subarray(0, offset))
      buffer = grown
    }
    buffer.set(value, offset)
  }
  return new Request(req, { body: buffer.subarray(0, size) })
}

/**
 * Read and discard a request body the route answered without reading (a refused key, an unknown route), so the
 * keep-alive connection stays usable, then give the answer. node-server would drain it for only 500 ms after the
 * answer and then destroy the socket: a body still arriving then (a slow upload, or one the client sends on after
 * headers) cost the connection, and the client could see a reset instead of the answer. Here the answer waits
 * until the body has arrived, up to `maxBytes` and while bytes keep coming (`idleMs` between them); past either
 * bound it goes out with `Connection: close`. Bodies are never parsed, only counted. An answer whose request
 * body was read (or had none) is returned as it is, synchronously.
 *
 * @example
 * return drainUnreadBody(env.incoming, res, { maxBytes: config.server.body_limit_bytes })
 */
export function drainUnreadBody(incoming: IncomingMessage, res: Response, opts: { maxBytes: number; idleMs?: number }): Response | Promise<Response> {
  // complete: the whole body arrived (or there was none); flowing or read: the route owns the body
  if (incoming.complete || incoming.destroyed || incoming.readableDidRead || incoming.readableFlowing !== null) return res
  const declared = Number(incoming.headers['content-length'])
  const drained = declared > opts.maxBytes ? Promise.resolve(false) : discard(incoming, opts.maxBytes, opts.idleMs ?? 1000)
  return drained.then((ended) => {
    if (ended) return res
    try {
      res.headers.set('connection', 'close')
    } catch {
      // immutable headers: node-server's own drain then closes the connection
    }
    return res
  })
}

/** Resolves true once the body has ended, false past `maxBytes`, after `idleMs` without a byte, or on close. */
function discard(incoming: IncomingMessage, maxBytes: number, idleMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let bytes = 0
    const done = (ended: boolean) => {
      clearTimeout(timer)
      incoming.off('data', onData)
      incoming.off('end', onEnd)
      incoming.off('close', onClose)
      incoming.off('error', onClose)
      resolve(ended)
    }
    const onData = (chunk: Buffer) => {
      bytes += chunk.length
      if (bytes > maxBytes) done(false)
      else timer.refresh()
    }
    const onEnd = () => done(true)
    const onClose = () => done(incoming.complete)
    const timer = setTimeout(() => done(false), idleMs)
    incoming.on('data', onData)
    incoming.once('end', onEnd)
    incoming.once('close', onClose)
    incoming.once('error', onClose)
    incoming.resume()
  })
}
