/**
 * The peer gateway for `npm run bench`: Portkey's open-source gateway (@portkey-ai/gateway from npm), run in
 * this process so the bench reads Portkey's own CPU time and RSS from /proc, exactly as it does for Sluice.
 *
 *   node start.mjs --port 8788 --upstream http://127.0.0.1:9000      (cwd bench/peer, after `npm ci` here)
 *
 * Prints `{"listening":PORT}` on stdout (and over IPC when forked) once it serves, like the other bench
 * children (bench/lib/procs.ts announceListening, restated here because this is plain node, not tsx).
 *
 * Portkey ships one bundled script (build/start-server.js) that builds its Hono app and calls
 * `serve({ fetch: app.fetch, port })` from @hono/node-server at import; the app is not exported. So this file
 * imports that script as it is and adjusts only the one server it creates, in two ways:
 *   1. it listens on 127.0.0.1 (Portkey's serve binds every interface) at the port the bench chose;
 *   2. every request gets Portkey's routing headers, `x-portkey-provider: openai` and
 *      `x-portkey-custom-host: <upstream>/v1`, appended to its raw headers before Portkey's request listener
 *      sees it. The bench sends the same OpenAI-style request to every target and has no per-target headers,
 *      so the routing is injected here; it is two array pushes, and everything after that (header checks,
 *      config parsing, the OpenAI provider's request and response transforms, the upstream fetch, streaming)
 *      is Portkey's own handler.
 * The bench's `authorization: Bearer …` reaches the fake as the OpenAI API key, which the fake ignores.
 *
 * @hono/node-server is pinned to 1.14.1 for the whole tree (package.json overrides): with newer versions
 * Portkey's chat completions fail with `TypeError: immutable` (Portkey-AI/gateway#1389).
 *
 * @example
 * // from bench/lib/targets.ts
 * const peer = await startPeer(upstream) // node bench/peer/start.mjs --port <free> --upstream <fake>
 */
import { Server } from 'node:http'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT ?? '0' },
    upstream: { type: 'string', default: process.env.UPSTREAM_URL }
  }
})
if (!values.upstream) throw new Error('peer: pass --upstream http://127.0.0.1:PORT (or UPSTREAM_URL)')
const port = Number(values.port)
if (!Number.isInteger(port) || port < 0) throw new Error(`peer: --port must be a port number, got ${values.port}`)
const routing = ['x-portkey-provider', 'openai', 'x-portkey-custom-host', `${values.upstream.replace(/\/+$/, '')}/v1`]

// Portkey reads `--port=N` and `--headless` (no web UI, no log-stream route) from argv when imported.
process.argv = [process.argv[0], process.argv[1], `--port=${port}`, '--headless']

// Catch the first listen() (Portkey's serve) once, then put listen back: nothing else is patched afterwards.
const listen = Server.prototype.listen
let server
Server.prototype.listen = function (_port, _host, onListening) {
  Server.prototype.listen = listen
  server = this
  const [handler] = this.listeners('request')
  if (!handler) throw new Error('peer: the server Portkey started has no request listener')
  this.removeAllListeners('request')
  // @hono/node-server builds the Request's headers from rawHeaders, so appending there is all it takes.
  this.on('request', (req, res) => {
    req.rawHeaders.push(...routing)
    return handler.call(this, req, res)
  })
  return listen.call(this, port, '127.0.0.1', typeof onListening === 'function' ? onListening : undefined)
}

try {
  // Resolves after Portkey's 1-second start-up spinner; by then serve() has been called.
  await import('@portkey-ai/gateway/build/start-server.js')
} finally {
  Server.prototype.listen = listen
}
if (!server) throw new Error('peer: @portkey-ai/gateway did not start a server')
if (!server.listening) await new Promise((resolve, reject) => server.once('listening', resolve).once('error', reject))

const msg = { listening: server.address().port }
console.log(JSON.stringify(msg))
process.send?.(msg)
const stop = () => process.exit(0)
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
