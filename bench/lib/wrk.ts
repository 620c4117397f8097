/**
 * Closed-loop load from wrk (Debian's `wrk`, C and one event loop): the same run as `closedLoop`'s autocannon, at a
 * fraction of its CPU per request. On a 2-core machine the load generator shares the cores with the target; the less
 * it takes, the more a throughput ratio says about the target rather than about the load generator.
 *
 * wrk cannot call the spec's body factory, so the bodies (and per-request headers) are made here first and wrk
 * sends them in order, each once: enough for `maxRps` requests a second over the run (default 40,000: more than
 * any target here serves with unique bodies; a bare Node answer reached 28,000). A run that would need more
 * fails instead of sending a body twice (a repeat would be an exact-cache hit in a miss run).
 */
import { execFileSync, spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ClosedLoopResult, RequestSpec } from './load.js'

/** Whether `wrk` can be run here. */
export function wrkAvailable(): boolean {
  try {
    execFileSync('wrk', ['--version'], { stdio: 'ignore' })
    return true
  } catch (err) {
    // wrk prints its usage and exits 1 on --version: it is there
    return (err as { status?: number }).status === 1
  }
}

/** A Lua string literal. */
const lua = (s: string) => JSON.stringify(s)

/**
 * The wrk script: loads the prepared requests (one per line: the per-request headers as name=value pairs joined by
 * `\x01`, a tab, the body), formats each once in `init`, sends them in order, and reports as one JSON line.
 */
function script(file: string, path: string, headers: Record<string, string>): string {
  const base = Object.entries(headers)
    .map(([k, v]) => `[${lua(k)}] = ${lua(v)}`)
    .join(', ')
  return `
local requests = {}
local i = 0
function init(args)
  for line in io.lines(${lua(file)}) do
    local tab = line:find("\\t", 1, true)
    local headers = { ${base} }
    for pair in line:sub(1, tab - 1):gmatch("[^\\1]+") do
      local eq = pair:find("=", 1, true)
      headers[pair:sub(1, eq - 1)] = pair:sub(eq + 1)
    end
    requests[#requests + 1] = wrk.format("POST", ${lua(path)}, headers, line:sub(tab + 1))
  end
end
function request()
  i = i + 1
  if i > #requests then i = 1 end
  return requests[i]
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('\\n{"requests":%d,"durationUs":%d,"status":%d,"errors":%d,"p50Us":%d,"p99Us":%d}\\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
`
}

/**
 * Closed loop: `connections` connections on one wrk thread, each sending the next request when the last one
 * answered, for `seconds`.
 *
 * @example
 * const r = await closedLoopWrk(spec, { connections: 32, seconds: 5 })
 */
export async function closedLoopWrk(spec: RequestSpec, opts: { connections: number; seconds: number; maxRps?: number }): Promise<ClosedLoopResult> {
  const constant = !spec.headersFor && spec.body(0) === spec.body(1)
  const count = constant ? 1 : Math.ceil(opts.seconds * (opts.maxRps ?? 40_000))
  const dir = await mkdtemp(join(tmpdir(), 'sluice-wrk-'))
  try {
    const lines: string[] = []
    for (let i = 0; i < count; i++) {
      const body = spec.body(i)
      if (body.includes('\n') || body.includes('\t')) throw new Error('closedLoopWrk: a body with a raw newline or tab cannot be sent line by line')
      const extra = spec.headersFor ? Object.entries(spec.headersFor(i)).map(([k, v]) => `${k}=${v}`).join('\x01') : ''
      lines.push(`${extra}\t${body}`)
    }
    const file = join(dir, 'requests.txt')
    await writeFile(file, lines.join('\n') + '\n')
    const lua = join(dir, 'script.lua')
    await writeFile(lua, script(file, spec.path, spec.headers))
    const args = ['-t1', `-c${opts.connections}`, `-d${opts.seconds}s`, '--timeout', '10s', '-s', lua, spec.origin]
    const out = await new Promise<string>((resolve, reject) => {
      const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] })
      let stdout = ''
      let stderr = ''
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString('utf8')))
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString('utf8')))
      child.on('error', reject)
      child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`wrk exited with ${code}: ${stderr || stdout}`))))
    })
    const line = out.split('\n').find((l) => l.startsWith('{"requests"'))
    if (!line) throw new Error(`wrk printed no summary:\n${out}`)
    const r = JSON.parse(line) as { requests: number; durationUs: number; status: number; errors: number; p50Us: number; p99Us: number }
    if (!constant && r.requests >= count) throw new Error(`closedLoopWrk: ${r.requests} requests needed more than the ${count} unique bodies prepared (raise maxRps)`)
    const seconds = r.durationUs / 1e6
    const ok = r.requests - r.status
    return { requests: r.requests, ok, non2xx: r.status, errors: r.errors, seconds, rps: ok / seconds, p50Ms: r.p50Us / 1000, p99Ms: r.p99Us / 1000 }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
