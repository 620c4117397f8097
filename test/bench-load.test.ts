import { createServer } from 'node:http'
import { describe, expect, it } from 'vitest'
import { closedLoop, openLoop } from '../bench/lib/load.js'
import { wrkAvailable } from '../bench/lib/wrk.js'

// The bench's load generators send each request's own headers (`headersFor`: `bench/ab.ts --sessions N`).
describe('bench load generators', () => {
  it('send headersFor(i) with the i-th body, closed and open loop', async () => {
    const seen: [string, string][] = []
    const server = createServer((req, res) => {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        seen.push([String(req.headers['x-sluice-session']), body])
        res.end('{}')
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const spec = {
      origin: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
      path: '/',
      headers: { 'content-type': 'application/json' },
      body: (i: number) => `{"i":${i}}`,
      headersFor: (i: number) => ({ 'x-sluice-session': `s-${i % 3}` })
    }
    try {
      await openLoop(spec, { rate: 40, seconds: 0.25, warmupSeconds: 0 })
      await closedLoop(spec, { connections: 2, seconds: 1 })
    } finally {
      server.close()
    }
    expect(seen.length).toBeGreaterThan(10)
    for (const [session, body] of seen) expect(session).toBe(`s-${(JSON.parse(body) as { i: number }).i % 3}`)
  })

  // CI installs wrk (.ci/run); elsewhere the test runs where Debian's wrk is installed
  it.skipIf(!wrkAvailable() && !process.env.CI)('wrk sends every prepared body once, in order, with its own headers and the spec\'s', async () => {
    const seen: { session: string; auth: string; i: number }[] = []
    const server = createServer((req, res) => {
      let body = ''
      req.on('data', (c) => (body += c))
      req.on('end', () => {
        seen.push({ session: String(req.headers['x-sluice-session']), auth: String(req.headers.authorization), i: (JSON.parse(body) as { i: number }).i })
        res.statusCode = seen.length % 5 === 0 ? 500 : 200
        res.end('{}')
      })
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    const spec = {
      origin: `http://127.0.0.1:${(server.address() as { port: number }).port}`,
      path: '/v1/x',
      headers: { 'content-type': 'application/json', authorization: 'Bearer k' },
      body: (i: number) => `{"i":${i},"text":"caf\u00e9 \\n"}`,
      headersFor: (i: number) => ({ 'x-sluice-session': `s-${i % 3}` })
    }
    let result
    try {
      // an in-process server answers a tiny body faster than any target: room for every request of the second
      result = await closedLoop(spec, { connections: 1, seconds: 1, generator: 'wrk', maxRps: 200_000 })
    } finally {
      server.close()
    }
    expect(seen.length).toBeGreaterThan(10)
    // one connection: the server sees the bodies in the order they were made, none twice (wrk may take one
    // request before it connects)
    const first = seen[0]!.i
    expect(first).toBeLessThanOrEqual(1)
    seen.forEach((s, k) => expect(s).toEqual({ session: `s-${(first + k) % 3}`, auth: 'Bearer k', i: first + k }))
    expect(result.requests).toBeGreaterThanOrEqual(seen.length - 1)
    expect(result.non2xx).toBe(Math.floor(result.requests / 5))
    expect(result.rps).toBeGreaterThan(0)
  })
})
