/**
 * Child processes for benchmarks: each target runs in its own process so its CPU time and RSS can be read
 * from /proc without the load generator's own work mixed in.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { availableParallelism } from 'node:os'
import { execFileSync } from 'node:child_process'

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released; the small race is fine for benches). */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      const port = typeof addr === 'object' && addr ? addr.port : 0
      srv.close(() => resolve(port))
    })
  })
}

export interface Child {
  name: string
  proc: ChildProcess
  pid: number
  port: number
  /** Last lines the child wrote to stdout/stderr, for error messages. */
  tail(): string
  stop(): Promise<void>
}

export interface StartOptions {
  name: string
  command: string
  args: string[]
  port: number
  env?: Record<string, string>
  cwd?: string
  /** Resolves true once the child serves; polled until `timeoutMs`. */
  ready: () => Promise<boolean>
  timeoutMs?: number
}

/**
 * Spawn a child and wait until `ready()` says it serves.
 *
 * @example
 * const floor = await startChild({ name: 'floor', command: process.execPath, args: ['--import', 'tsx', 'bench/baseline-proxy.ts', ...], port, ready: () => httpOk(port, '/v1/models') })
 */
export async function startChild(opts: StartOptions): Promise<Child> {
  const proc = spawn(opts.command, opts.args, {
    cwd: opts.cwd,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const lines: string[] = []
  const keep = (buf: Buffer) => {
    for (const line of buf.toString('utf8').split('\n')) if (line.trim()) lines.push(line)
    if (lines.length > 40) lines.splice(0, lines.length - 40)
  }
  proc.stdout!.on('data', keep)
  proc.stderr!.on('data', keep)
  let exited: number | null | undefined
  proc.once('exit', (code) => (exited = code))

  const child: Child = {
    name: opts.name,
    proc,
    pid: proc.pid!,
    port: opts.port,
    tail: () => lines.join('\n'),
    stop: () => stopProcess(proc)
  }
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000)
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(`${opts.name} exited with code ${exited} before serving:\n${child.tail()}`)
    if (await opts.ready().catch(() => false)) return child
    await new Promise((r) => setTimeout(r, 100))
  }
  await child.stop()
  throw new Error(`${opts.name} did not serve within ${opts.timeoutMs ?? 30_000} ms:\n${child.tail()}`)
}

/** SIGTERM, then SIGKILL after 3 s. */
export async function stopProcess(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return
  const gone = new Promise<void>((r) => proc.once('exit', () => r()))
  proc.kill('SIGTERM')
  const timer = setTimeout(() => proc.kill('SIGKILL'), 3_000)
  await gone
  clearTimeout(timer)
}

let clockTicks: number | undefined
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clockTicks = 100
    }
  }
  return clockTicks
}

/** CPU time (user + system, all threads) of a process in microseconds, from /proc/<pid>/stat. */
export function cpuMicros(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the command name, which may itself contain spaces and parentheses.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(fields[11])
  const stime = Number(fields[12])
  return ((utime + stime) * 1_000_000) / ticksPerSecond()
}

/**
 * Binds every thread of a process (and the threads it starts later) to one CPU, with util-linux's `taskset`.
 * On a 2-core machine, an A/B that keeps the gateways on one core and the load generator and the fake upstream
 * on the other stops the scheduler from putting them on the same core for part of a round.
 *
 * @example
 * pinToCpu(gateway.pid, 1)
 */
export function pinToCpu(pid: number, cpu: number): void {
  execFileSync('taskset', ['-a', '-p', '-c', String(cpu), String(pid)], { stdio: 'ignore' })
  // `taskset -a` exits 0 for a pid that is gone, having pinned nothing: read the affinity back
  let allowed: string | undefined
  try {
    allowed = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]
  } catch {
    // no such process
  }
  if (allowed !== String(cpu)) throw new Error(`could not pin process ${pid} to CPU ${cpu} (it may run on: ${allowed ?? 'no such process'})`)
}

/**
 * The servers under measurement on the last CPU; the other children (the fake upstream, Redis) and this process (the
 * load generator) on the first: how `--pin` runs of bench/ab.ts, bench/ttfb-phases.ts and bench/ttfb-segments.ts lay
 * out a 2-core machine.
 *
 * @example
 * pinApart([gateway], children)
 */
export function pinApart(servers: Child[], children: Child[]): void {
  const last = availableParallelism() - 1
  for (const s of servers) pinToCpu(s.pid, last)
  for (const c of children) if (!servers.includes(c)) pinToCpu(c.pid, 0)
  pinToCpu(process.pid, 0)
}

/** Resident set size in bytes, from /proc/<pid>/status. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const m = /VmRSS:\s+(\d+) kB/.exec(status)
  return m ? Number(m[1]) * 1024 : 0
}

/** Samples RSS every `everyMs` until stopped; returns the peak. */
export function sampleRss(pid: number, everyMs = 200): { stop: () => number } {
  let peak = rssBytes(pid)
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(pid))
    } catch {
      // the process is gone; the peak so far stands
    }
  }, everyMs)
  return {
    stop: () => {
      clearInterval(timer)
      try {
        peak = Math.max(peak, rssBytes(pid))
      } catch {
        // as above
      }
      return peak
    }
  }
}

/**
 * Start a throwaway redis-server on a free port (no persistence).
 *
 * @example
 * const redis = await startRedis(); // redis.port; await redis.stop()
 */
export async function startRedis(): Promise<Child> {
  const port = await freePort()
  return startChild({
    name: 'redis',
    command: 'redis-server',
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    port,
    ready: () => redisPing(port)
  })
}

async function redisPing(port: number): Promise<boolean> {
  const { connect } = await import('node:net')
  return new Promise((resolve) => {
    const sock = connect(port, '127.0.0.1')
    const done = (ok: boolean) => {
      sock.destroy()
      resolve(ok)
    }
    sock.setTimeout(500, () => done(false))
    sock.once('error', () => done(false))
    sock.once('connect', () => sock.write('PING\r\n'))
    sock.once('data', (d) => done(d.toString().startsWith('+PONG')))
  })
}

/**
 * What a bench child process does once its server listens: print (and, under a fork, send) `{ listening: port }`,
 * and exit cleanly on SIGTERM / SIGINT.
 */
export function announceListening(port: number): void {
  const msg = { listening: port }
  console.log(JSON.stringify(msg))
  process.send?.(msg)
  const stop = () => process.exit(0)
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}
