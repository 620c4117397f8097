import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createServer } from 'node:net'

export interface TestRedis {
  url: string
  port: number
  /** Kill the server (tests of Redis going away). */
  stop(): Promise<void>
  /** Start it again on the same port. */
  start(): Promise<void>
}

/** A free TCP port on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer()
    s.unref()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => resolve(port))
    })
  })
}

export function redisAvailable(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0
}

/**
 * Start a real redis-server on a free port for a test file. Under CI a missing redis-server fails the run
 * (`.ci/run` installs it); elsewhere callers may skip.
 *
 * @example
 * const redis = await startRedis()
 * afterAll(() => redis.stop())
 */
export async function startRedis(): Promise<TestRedis> {
  const port = await freePort()
  let proc: ChildProcess | undefined
  const start = async () => {
    proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], { stdio: 'ignore' })
    const deadline = Date.now() + 10_000
    for (;;) {
      if (spawnSync('redis-cli', ['-p', String(port), 'ping']).stdout?.toString().trim() === 'PONG') return
      if (Date.now() > deadline) throw new Error(`redis-server did not start on port ${port}`)
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  await start()
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    async stop() {
      if (!proc || proc.exitCode !== null) return
      const p = proc
      await new Promise<void>((r) => {
        p.once('exit', () => r())
        p.kill('SIGKILL')
      })
    }
  }
}

/** CI sets CI to "true", "1", "yes" or a name; only unset, empty, "false" and "0" mean a developer machine. */
export const underCI = !['', 'false', '0'].includes((process.env.CI ?? '').trim().toLowerCase())

/** Whether Redis-backed tests run: always under CI (missing Redis is a failure there), else when installed. */
export const runRedisTests = underCI || redisAvailable()
