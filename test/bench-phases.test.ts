import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Pool } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { PHASE_MARKS_PRELOAD, readPhases } from '../bench/lib/phases.js'
import type { Child } from '../bench/lib/procs.js'
import { startFake, startFloor } from '../bench/lib/targets.js'

// bench/ttfb-phases.ts reads where a server's time to first byte goes from a preload (bench/lib/phase-marks.mjs):
// through the floor (node:http + undici), each phase must be noted for every request, overlapping requests left
// out, and each report must cover only the requests since the last one.
describe('bench phase marks', () => {
  const children: Child[] = []
  let floor: Child
  let out: string
  let rowsFile: string
  let dir: string

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-phases-test-'))
    out = join(dir, 'floor.json')
    rowsFile = join(dir, 'rows.json')
    const fake = await startFake()
    children.push(fake)
    floor = await startFloor(`http://127.0.0.1:${fake.port}`, { nodeArgs: PHASE_MARKS_PRELOAD, env: { PHASE_MARKS_OUT: out, PHASE_MARKS_ROWS: rowsFile } })
    children.push(floor)
    // the readiness probe is not part of what the tests count
    await readPhases(floor.pid, out)
  }, 60_000)
  afterAll(async () => {
    for (const c of children.reverse()) await c.stop()
    await rm(dir, { recursive: true, force: true })
  })

  const stream = (pool: Pool, tokens: number, delayMs: number) =>
    pool
      .request({
        path: '/v1/chat/completions',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        // the fake's first byte waits delay_ms: the upstream phase must show it
        body: JSON.stringify({ model: `gpt-4o-mini@tokens=${tokens},delay_ms=${delayMs}`, stream: true, messages: [{ role: 'user', content: 'hi' }] })
      })
      .then((res) => res.body.text())

  it('notes every phase of sequential requests, the upstream wait in its own phase', async () => {
    const pool = new Pool(`http://127.0.0.1:${floor.port}`, { connections: 2 })
    for (let i = 0; i < 6; i++) expect(await stream(pool, 3, 20)).toContain('[DONE]')
    await pool.close()
    const r = await readPhases(floor.pid, out)
    expect(r.requests).toBe(6)
    expect(r.overlapped).toBe(0)
    for (const phase of [r.beforeUpstream, r.upstream, r.afterUpstream, r.firstByte, r.corked]) expect(phase).toBeGreaterThanOrEqual(0)
    // 20 ms of upstream delay lands in the upstream phase, not before or after it
    expect(r.upstream!).toBeGreaterThanOrEqual(20_000)
    expect(r.beforeUpstream!).toBeLessThan(20_000)
    expect(r.afterUpstream!).toBeLessThan(20_000)
    expect(r.firstByte!).toBeGreaterThanOrEqual(r.upstream!)
  })

  it("writes each counted request's moments on the clock of a CPU profile (process.hrtime, µs)", async () => {
    const pool = new Pool(`http://127.0.0.1:${floor.port}`, { connections: 2 })
    const sentAt: number[] = []
    const answeredAt: number[] = []
    for (let i = 0; i < 4; i++) {
      sentAt.push(Number(process.hrtime.bigint() / 1000n))
      const res = await pool.request({
        path: '/v1/chat/completions',
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini@tokens=2,delay_ms=5', stream: true, messages: [{ role: 'user', content: 'hi' }] })
      })
      answeredAt.push(Number(process.hrtime.bigint() / 1000n))
      await res.body.text()
    }
    await pool.close()
    await readPhases(floor.pid, out)
    const rows = JSON.parse(await readFile(rowsFile, 'utf8')) as { arrive: number; sent: number; upstream: number; first: number }[]
    expect(rows).toHaveLength(4)
    for (const [i, r] of rows.entries()) {
      // the server's moments fall between the client's send and its answer, in order
      expect(r.arrive).toBeGreaterThanOrEqual(sentAt[i]!)
      expect(r.sent).toBeGreaterThanOrEqual(r.arrive)
      expect(r.upstream - r.sent).toBeGreaterThanOrEqual(5_000)
      expect(r.first).toBeGreaterThanOrEqual(r.upstream)
      expect(r.first).toBeLessThanOrEqual(answeredAt[i]!)
    }
  })

  it('leaves out requests that overlapped, and starts each report afresh', async () => {
    const pool = new Pool(`http://127.0.0.1:${floor.port}`, { connections: 2 })
    await Promise.all([stream(pool, 3, 30), stream(pool, 3, 30)])
    await pool.close()
    const r = await readPhases(floor.pid, out)
    expect(r).toMatchObject({ requests: 0, overlapped: 2, beforeUpstream: null, firstByte: null })
    const empty = await readPhases(floor.pid, out)
    expect(empty).toMatchObject({ requests: 0, overlapped: 0 })
  })
})
