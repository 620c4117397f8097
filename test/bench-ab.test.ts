import { execFile } from 'node:child_process'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '..')

describe('bench/ab.ts', () => {
  it('serves the floor and a reference server in interleaved rounds and gives the paired ratios to the floor', async () => {
    // no Sluice variant, so no build is needed: the floor and the Hono answer behind the fake upstream
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', 'bench/ab.ts', '--no-build', '--rounds', '2', '--seconds', '1', '--warmup', '1', '--connections', '4', '--variants', 'floor,hono-answer'],
      { cwd: ROOT, timeout: 90_000 }
    )
    expect(stdout).toMatch(/^round 0: floor \d+ µs \| hono-answer \d+ µs$/m)
    expect(stdout).toMatch(/^round 1: floor \d+ µs \| hono-answer \d+ µs$/m)
    expect(stdout).toMatch(/^ {2}floor: median \d+ µs, \d+ req\/s$/m)
    expect(stdout).toMatch(/^ {2}hono-answer: median \d+ µs, \d+ req\/s \([\d.]+× the floor's CPU, [\d.]+× its req\/s\); paired [+-][\d.]+ µs against floor, lower in \d of 2$/m)
  }, 120_000)

  it('with --rate, loads each variant in an open loop and pairs their latency percentiles', async () => {
    const { stdout } = await run(
      process.execPath,
      ['--import', 'tsx', 'bench/ab.ts', '--no-build', '--rounds', '2', '--seconds', '1', '--warmup', '1', '--rate', '50', '--variants', 'floor,hono-answer'],
      { cwd: ROOT, timeout: 90_000 }
    )
    expect(stdout).toMatch(/^round 1: floor \d+ µs, p50 [\d.]+ ms, p99 [\d.]+ ms \| hono-answer \d+ µs, p50 [\d.]+ ms, p99 [\d.]+ ms$/m)
    expect(stdout).toMatch(/open loop at 50 req\/s/)
    expect(stdout).toMatch(/^ {2}floor: p50 [\d.]+ ms, p99 [\d.]+ ms$/m)
    expect(stdout).toMatch(/^ {2}hono-answer: p50 [\d.]+ ms, p99 [\d.]+ ms; p50 paired [+-][\d.]+ ms against floor, lower in \d of 2; p99 paired [+-][\d.]+ ms against floor, lower in \d of 2$/m)
  }, 120_000)

  it('refuses an unknown policy before starting anything', async () => {
    const failed = await run(process.execPath, ['--import', 'tsx', 'bench/ab.ts', '--no-build', '--variants', 'dist@no-such'], { cwd: ROOT, timeout: 30_000 }).catch((e: { stderr: string }) => e)
    expect((failed as { stderr: string }).stderr).toMatch(/unknown policy "no-such"/)
  }, 60_000)
})
