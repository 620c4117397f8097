import { spawn } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { describe, expect, it } from 'vitest'
import { pinToCpu, stopProcess } from '../bench/lib/procs.js'

/** The CPUs each thread of a process may run on (`Cpus_allowed_list` of every /proc/<pid>/task/<tid>). */
function allowedByThread(pid: number): string[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))![1]!)
}

describe('pinToCpu (bench/ab.ts --pin)', () => {
  it('binds every thread of a running process to the one CPU, including threads it starts afterwards', async () => {
    // a node process already runs several threads (V8's platform workers, libuv's); it starts a Worker once told to
    const child = spawn(process.execPath, ['-e', "process.stdin.once('data', () => new (require('node:worker_threads').Worker)('setInterval(() => {}, 1000)', { eval: true })); setInterval(() => {}, 1000)"], { stdio: ['pipe', 'ignore', 'ignore'] })
    try {
      await new Promise((r) => child.once('spawn', r))
      await expect.poll(() => allowedByThread(child.pid!).length, { timeout: 5_000 }).toBeGreaterThan(1)
      const cpu = availableParallelism() - 1
      const before = allowedByThread(child.pid!)
      pinToCpu(child.pid!, cpu)
      const pinned = allowedByThread(child.pid!)
      expect(pinned.length).toBeGreaterThan(1)
      expect(new Set(pinned)).toEqual(new Set([String(cpu)]))
      if (availableParallelism() > 1) expect(before).not.toEqual(pinned)
      child.stdin!.write('go\n')
      await expect.poll(() => allowedByThread(child.pid!).length, { timeout: 5_000 }).toBeGreaterThan(pinned.length)
      expect(new Set(allowedByThread(child.pid!))).toEqual(new Set([String(cpu)]))
    } finally {
      await stopProcess(child)
    }
  })

  it('fails loudly for a process that does not exist (taskset -a itself exits 0 for one)', () => {
    expect(() => pinToCpu(2 ** 22 + 12345, 0)).toThrow()
  })
})
