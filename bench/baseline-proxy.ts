/**
 * The floor: a bare pass-through proxy (node:http server + one keep-alive undici Pool, no features).
 * Any Node gateway pays at least this much per request; Sluice is measured as a ratio to it.
 * Bodies are piped both ways, so streams flow through chunk by chunk, never buffered.
 *
 * Run: `node --import tsx bench/baseline-proxy.ts --port 0 --upstream http://127.0.0.1:PORT`;
 * prints `{"listening":PORT}` on stdout (and over IPC when forked) once it listens.
 *
 * @example
 * const floor = await startBaselineProxy({ port: 0, upstream: 'http://127.0.0.1:9000' })
 */
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'
import { announceListening } from './lib/procs.js'
import { Pool } from 'undici'

// Hop-by-hop headers belong to one connection and must not be forwarded (RFC 9110 §7.6.1).
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'host'])

function forwardable(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {}
  for (const [k, v] of Object.entries(headers)) if (v !== undefined && !HOP.has(k)) out[k] = v
  return out
}

export async function startBaselineProxy(opts: { port: number; upstream: string; connections?: number }) {
  const pool = new Pool(opts.upstream, { connections: opts.connections ?? 256, pipelining: 1, keepAliveTimeout: 30_000 })
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    const bodyless = req.method === 'GET' || req.method === 'HEAD'
    pool
      .request({ path: req.url ?? '/', method: req.method as 'POST', headers: forwardable(req.headers), body: bodyless ? null : req })
      .then(async (up) => {
        res.writeHead(up.statusCode, forwardable(up.headers))
        await pipeline(up.body, res)
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'application/json' }).end('{"error":{"message":"bad gateway"}}')
        else res.destroy()
      })
  })
  await new Promise<void>((resolve) => server.listen(opts.port, '127.0.0.1', resolve))
  const addr = server.address()
  const port = typeof addr === 'object' && addr ? addr.port : opts.port
  return {
    port,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()))
      await pool.close()
    }
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.PORT ?? '0' },
      upstream: { type: 'string', default: process.env.UPSTREAM_URL }
    }
  })
  if (!values.upstream) throw new Error('baseline-proxy: pass --upstream http://127.0.0.1:PORT (or UPSTREAM_URL)')
  const { port } = await startBaselineProxy({ port: Number(values.port), upstream: values.upstream })
  announceListening(port)
}
