import { createServer } from 'node:http'
import { describe, expect, it } from 'vitest'
import { closedLoop, openLoop } from '../bench/lib/load.js'

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
})
