/**
 * Reference points beside the floor, for reading the gateway's numbers against what its own stack costs:
 *
 * - `node-answer`: node:http reads and parses the JSON body and answers one constant chat completion. No
 *   upstream, no features: the most an exact-cache hit can do on this machine from Node.
 * - `hono-answer`: the same constant answer from Hono on @hono/node-server: the most a cache hit can do from a
 *   Hono app.
 * - `hono-proxy`: Hono on @hono/node-server reads the JSON body, sends it upstream with undici and answers
 *   `c.json()` of the upstream's JSON: the least any Hono gateway that reads what it forwards pays per request,
 *   before any feature.
 *
 * Both Hono servers read the body from Node's request (`c.env.incoming`), as Sluice does (routes/incoming.ts), not
 * with `c.req.json()`: that builds node-server's WHATWG Request (headers, an AbortController, the body as a web
 * stream), which on this machine cost more than the whole floor (`--body hono` measures it: see README).
 *
 * Run: `node --import tsx bench/reference-servers.ts --kind node-answer|hono-answer|hono-proxy --port 0
 * [--upstream URL] [--body node|hono]`; prints `{"listening":PORT}` once it listens.
 *
 * @example
 * const ref = await startReferenceServer({ kind: 'hono-proxy', port: 0, upstream: 'http://127.0.0.1:9000' })
 */
import { createServer, type IncomingMessage } from 'node:http'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { serve } from '@hono/node-server'
import { Hono, type Context as HonoContext } from 'hono'
import { Pool } from 'undici'
import { announceListening } from './lib/procs.js'

/** The reference servers this file can start, by `--kind`. */
export const REFERENCE_KINDS = ['node-answer', 'hono-answer', 'hono-proxy'] as const
export type ReferenceKind = (typeof REFERENCE_KINDS)[number]

/** A completion of the size the fake's fast model returns (16 tokens), as a cache would replay it. */
const ANSWER = JSON.stringify({
  id: 'chatcmpl-reference',
  object: 'chat.completion',
  created: 1_700_000_000,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'tok'.concat(' tok'.repeat(15)) }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 60, completion_tokens: 16, total_tokens: 76 }
})

/** How a Hono reference reads the request body: from Node's request (as Sluice does) or with `c.req.json()`. */
export type BodyReading = 'node' | 'hono'

/** The whole body of a Node request, parsed as JSON. */
function nodeJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (b: Buffer) => chunks.push(b))
    req.once('end', () => {
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')))
      } catch (err) {
        reject(err)
      }
    })
    req.once('error', reject)
  })
}

export async function startReferenceServer(opts: { kind: ReferenceKind; port: number; upstream?: string; body?: BodyReading }): Promise<{ port: number; close: () => Promise<void> }> {
  if (opts.kind === 'node-answer') {
    const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
      nodeJson(req).then(
        () => res.writeHead(200, { 'content-type': 'application/json' }).end(ANSWER),
        () => res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"message":"invalid JSON"}}')
      )
    })
    await new Promise<void>((resolve) => server.listen(opts.port, '127.0.0.1', resolve))
    const addr = server.address()
    return { port: typeof addr === 'object' && addr ? addr.port : opts.port, close: () => new Promise((r) => server.close(() => r())) }
  }
  const app = new Hono<{ Bindings: { incoming: IncomingMessage } }>()
  type Context = HonoContext<{ Bindings: { incoming: IncomingMessage } }>
  const readJson = opts.body === 'hono' ? (c: Context) => c.req.json<unknown>() : (c: Context) => nodeJson(c.env.incoming)
  app.onError((_err, c) => c.json({ error: { message: 'invalid request' } }, 400))
  if (opts.kind === 'hono-answer') {
    const answer = JSON.parse(ANSWER) as object
    app.post('/v1/chat/completions', async (c) => {
      await readJson(c)
      return c.json(answer)
    })
    return listen(app, opts.port, async () => {})
  }
  if (!opts.upstream) throw new Error('hono-proxy needs --upstream')
  const pool = new Pool(opts.upstream, { connections: 256, pipelining: 1, keepAliveTimeout: 30_000 })
  app.post('/v1/chat/completions', async (c) => {
    const body = (await readJson(c)) as Record<string, unknown>
    const up = await pool.request({
      path: '/v1/chat/completions',
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      // a gateway rewrites at least the model it forwards
      body: JSON.stringify({ ...body, model: body.model })
    })
    return c.json((await up.body.json()) as object, up.statusCode as 200)
  })
  return listen(app, opts.port, () => pool.close())
}

async function listen(app: Hono<{ Bindings: { incoming: IncomingMessage } }>, port: number, closeMore: () => Promise<void>): Promise<{ port: number; close: () => Promise<void> }> {
  let server: ReturnType<typeof serve> | undefined
  const bound = await new Promise<number>((resolve) => {
    server = serve({ fetch: app.fetch, port, hostname: '127.0.0.1' }, (info) => resolve(info.port))
  })
  return {
    port: bound,
    close: async () => {
      await new Promise<void>((r) => server!.close(() => r()))
      await closeMore()
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      kind: { type: 'string' },
      port: { type: 'string', default: '0' },
      upstream: { type: 'string' },
      body: { type: 'string', default: 'node' }
    }
  })
  if (values.body !== 'node' && values.body !== 'hono') throw new Error(`reference-servers: --body node | hono, got ${values.body}`)
  const kind = REFERENCE_KINDS.find((k) => k === values.kind)
  if (!kind) throw new Error(`reference-servers: --kind ${REFERENCE_KINDS.join(' | ')}, got ${values.kind}`)
  const { port } = await startReferenceServer({ kind, port: Number(values.port), upstream: values.upstream, body: values.body })
  announceListening(port)
}
