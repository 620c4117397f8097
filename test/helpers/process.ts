/**
 * Run a gateway as a real child process (`node --import tsx src/cli.ts start --config <file>`), the way an
 * operator does: signals, exit codes, stdout/stderr and hot reload of the config file all behave for real.
 *
 * @example
 * const { file } = writeGatewayConfig({ openaiUrl: fake.url, openaiKey: fake.apiKey })
 * const gw = await spawnGateway(file)
 * await fetch(gw.url + '/healthz')
 * gw.kill('SIGTERM'); await gw.exited
 */
import { spawn } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeConfigFiles } from './gateway.js'

export interface GatewayConfigOptions {
  openaiUrl?: string
  openaiKey?: string
  /** Policies by team (YAML objects); teams `a` and `b` exist by default. */
  policies?: Record<string, unknown>
  /** Extra or replaced top-level config (store, models, providers, server…). */
  config?: Record<string, unknown>
}

/** The same config shape as `startTestGateway` writes, on disk, for a process to load. */
export function writeGatewayConfig(opts: GatewayConfigOptions = {}): { dir: string; file: string; config: Record<string, unknown> } {
  return writeConfigFiles(
    mkdtempSync(join(tmpdir(), 'sluice-proc-')),
    {
      server: { port: 0, host: '127.0.0.1', shutdown_grace_ms: 5000 },
      store: { kind: 'memory' },
      prices: join(process.cwd(), 'config/prices.yaml'),
      providers: {
        openai: { kind: 'openai', base_url: opts.openaiUrl ?? 'http://127.0.0.1:9/v1', api_key: opts.openaiKey ?? 'sk-none' }
      },
      models: {
        'gpt-4o-mini': { provider: 'openai', model: 'gpt-4o-mini' },
        'text-embedding-3-small': { provider: 'openai', model: 'text-embedding-3-small', type: 'embedding' }
      }
    },
    opts.policies,
    opts.config
  )
}

export interface GatewayProcess {
  url: string
  port: number
  pid: number
  /** Everything the process wrote so far. */
  stdout(): string
  stderr(): string
  kill(signal?: NodeJS.Signals): void
  /** Resolves with the exit code (or the signal that ended it). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Wait until stdout matches, bounded in time. */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<void>
  /** SIGKILL if still running, and wait for the exit. */
  stop(): Promise<void>
}

/**
 * Spawn `sluice start` on port 0, read the port it bound from its "sluice listening on" line, and wait until
 * `/healthz` answers (bounded: 20 s). The child picks its own port: a port probed free here and bound later by
 * the child could be taken by a parallel test in between (EADDRINUSE, or worse, another gateway answering).
 *
 * @example
 * const gw = await spawnGateway(file, { env: { OPENAI_API_KEY: 'x' } })
 */
export async function spawnGateway(file: string, opts: { env?: Record<string, string>; startTimeoutMs?: number } = {}): Promise<GatewayProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--config', file], {
    cwd: process.cwd(),
    env: { ...process.env, ...opts.env, PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d))
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  let done = false
  void exited.then(() => (done = true))
  const deadline = Date.now() + (opts.startTimeoutMs ?? 20_000)
  let port = 0
  for (;;) {
    if (done) throw new Error(`gateway exited during start:\n${out}\n${err}`)
    port ||= Number(/sluice listening on http:\/\/\S+:(\d+) /.exec(out)?.[1] ?? 0)
    if (port) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(1000) })
        if (res.ok) break
      } catch {
        // listening, not answering yet
      }
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`gateway did not answer /healthz within the start timeout:\n${out}\n${err}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    kill: (signal = 'SIGTERM') => void child.kill(signal),
    exited,
    async waitForLog(pattern, timeoutMs = 10_000) {
      const end = Date.now() + timeoutMs
      while (!pattern.test(out)) {
        if (Date.now() > end) throw new Error(`no log line matching ${pattern} within ${timeoutMs} ms:\n${out}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    },
    async stop() {
      if (!done) child.kill('SIGKILL')
      await exited
    }
  }
}
