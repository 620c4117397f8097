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

export interface TestRedisCluster {
  /** Seed URLs of every master, as `store.urls` takes them. */
  urls: string[]
  ports: number[]
  stop(): Promise<void>
}

/**
 * Start a real Redis Cluster for a test file: `masters` redis-servers in cluster mode on free ports (no replicas),
 * joined with `redis-cli --cluster create`, ready once every slot is served.
 *
 * @example
 * const cluster = await startRedisCluster()
 * const store = await createRedisStore({ urls: cluster.urls })
 */
export async function startRedisCluster(masters = 3): Promise<TestRedisCluster> {
  const { mkdtempSync, rmSync } = await import('node:fs')
  const { tmpdir } = await import('node:os')
  const { join } = await import('node:path')
  const dir = mkdtempSync(join(tmpdir(), 'sluice-cluster-'))
  const ports: number[] = []
  for (let i = 0; i < masters; i++) ports.push(await freePort())
  const procs = ports.map((port) =>
    spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--dir', dir], { stdio: 'ignore' })
  )
  const stop = async () => {
    await Promise.all(procs.map((p) => (p.exitCode !== null ? undefined : new Promise<void>((r) => (p.once('exit', () => r()), p.kill('SIGKILL'))))))
    rmSync(dir, { recursive: true, force: true })
  }
  const until = async (what: string, ok: () => boolean) => {
    const deadline = Date.now() + 15_000
    while (!ok()) {
      if (Date.now() > deadline) {
        await stop()
        throw new Error(`Redis Cluster on ports ${ports.join(', ')}: ${what}`)
      }
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  const cli = (port: number, ...args: string[]) => spawnSync('redis-cli', ['-p', String(port), ...args]).stdout?.toString() ?? ''
  await until('a server did not start', () => ports.every((p) => cli(p, 'ping').trim() === 'PONG'))
  const created = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'])
  if (created.status !== 0) {
    await stop()
    throw new Error(`redis-cli --cluster create failed: ${created.stdout?.toString().slice(-400)}`)
  }
  await until('the slots were not all served', () => ports.every((p) => /cluster_state:ok/.test(cli(p, 'cluster', 'info'))))
  return { urls: ports.map((p) => `redis://127.0.0.1:${p}`), ports, stop }
}

/** The write methods of a connection's socket that a test may wrap. */
export interface WritableSocket {
  _write: (...a: unknown[]) => void
  _writev?: (...a: unknown[]) => void
}

/**
 * Counts the writes (syscalls) the given sockets make while `body` runs, all of them together.
 *
 * @example
 * await countSocketWrites([client.stream], async (writes) => { await client.get('k'); expect(writes()).toBe(1) })
 */
export async function countSocketWrites(sockets: WritableSocket[], body: (writes: () => number) => Promise<void>): Promise<void> {
  let writes = 0
  const restore = sockets.map((socket) => {
    const { _write, _writev } = socket
    socket._write = function (this: unknown, ...args: unknown[]) {
      writes++
      return _write.apply(this, args)
    }
    socket._writev = function (this: unknown, ...args: unknown[]) {
      writes++
      return _writev!.apply(this, args)
    }
    return () => Object.assign(socket, { _write, _writev })
  })
  try {
    await body(() => writes)
  } finally {
    for (const r of restore) r()
  }
}
