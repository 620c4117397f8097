import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI, { type APIError } from 'openai'
import { stringify } from 'yaml'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { teamKeys } from '../src/budget/keys.js'
import { createRedisStore } from '../src/store/redis.js'
import type { Store } from '../src/store/types.js'
import { countPromptTokens } from '../src/tokens.js'
import { startFakeOpenAI, type FakeOpenAI } from './fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, startTestGateway } from './helpers/gateway.js'
import { freePort, runRedisTests, startRedis, type TestRedis } from './helpers/redis.js'

const PRICE = { input: 1000, output: 2000 } // USD per million tokens: large, so a few requests fill the cap
const CAP = 3
const KEYS = [1, 2, 3, 4].map((i) => `sk-sluice-team-a-multi-000000000${i}`)

let redis: TestRedis
let fake: FakeOpenAI

beforeAll(async () => {
  if (!runRedisTests) return
  redis = await startRedis()
  fake = await startFakeOpenAI()
})
afterAll(async () => {
  await fake?.close()
  await redis?.stop()
})

function startProcess(config: string, port: number): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'start', '--config', config], { env: { ...process.env, PORT: String(port) }, stdio: ['ignore', 'pipe', 'pipe'] })
  return new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => reject(new Error(`gateway did not start: ${out}`)), 20_000)
    const onData = (d: Buffer) => {
      out += d
      if (out.includes('sluice listening')) {
        clearTimeout(timer)
        resolve(proc)
      }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', onData)
    proc.once('exit', () => reject(new Error(`gateway exited: ${out}`)))
  })
}

function stopProcess(proc: ChildProcess): Promise<void> {
  return new Promise((r) => {
    if (proc.exitCode !== null) return r()
    proc.once('exit', () => r())
    proc.kill('SIGTERM')
  })
}

describe.runIf(runRedisTests)('budgets across gateway processes on one Redis', () => {
  // both store.batch_writes windows: the writes they hold back (settlements, ledger appends) must all land
  it.each(['tick', 'turn'] as const)('never passes the team cap under 500 concurrent requests from two processes, and the ledger matches what upstream served (batch_writes: %s)', async (batching) => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-budget-'))
    writeFileSync(join(dir, 'a.yaml'), stringify({ budgets: [{ scope: 'team', limit_usd: CAP, window: 'day' }] }))
    const prefix = `multi-${batching}:`
    const file = join(dir, 'gateway.yaml')
    writeFileSync(
      file,
      stringify({
        server: { host: '127.0.0.1', shutdown_grace_ms: 3000 },
        store: { kind: 'redis', url: redis.url, prefix, batch_writes: batching },
        prices: join(process.cwd(), 'config/prices.yaml'),
        providers: { openai: { kind: 'openai', base_url: fake.url, api_key: fake.apiKey } },
        models: { 'gpt-4o-mini': { provider: 'openai', model: 'gpt-4o-mini', price: PRICE } },
        teams: { a: { policy: 'a.yaml' } },
        keys: KEYS.map((key) => ({ key, team: 'a' })),
        admin_key: ADMIN_KEY,
        metrics: { enabled: false }
      })
    )
    const ports = [await freePort(), await freePort()]
    const procs = await Promise.all(ports.map((p) => startProcess(file, p)))
    const store: Store = await createRedisStore({ url: redis.url, prefix })
    try {
      const served0 = { ...fake.served }
      // the upstream reports the prompt the way the gateway counts it, so a reservation is a true worst case
      fake.script = (body) => ({ content: Array(10).fill('hello').join(' '), completionTokens: 11, promptTokens: countPromptTokens(body, 'o200k_base'), chunkDelayMs: body.stream ? 3 : 0 })
      const clients = ports.flatMap((port) => KEYS.map((key) => new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: key, maxRetries: 0 })))
      const outcomes = { ok: 0, refused: 0, aborted: 0, other: [] as string[] }
      await Promise.all(
        Array.from({ length: 500 }, async (_, i) => {
          const client = clients[i % clients.length]!
          const params = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `question ${i}` }], max_tokens: 20 }
          try {
            if (i % 3 === 0) {
              const controller = new AbortController()
              const stream = await client.chat.completions.create({ ...params, stream: true }, { signal: controller.signal })
              let n = 0
              let left = false
              try {
                for await (const _ of stream) {
                  if (i % 6 === 0 && ++n === 3) {
                    controller.abort()
                    // and leave: an abort that lands after the whole (short) stream has arrived can leave the SDK's
                    // iterator waiting for a read that never settles (seen once in ~20 runs, before any change here)
                    left = true
                    break
                  }
                }
                if (left) outcomes.aborted++
                else outcomes.ok++
              } catch {
                outcomes.aborted++
              }
            } else {
              await client.chat.completions.create(params)
              outcomes.ok++
            }
          } catch (err) {
            if ((err as APIError).code === 'budget_exceeded') outcomes.refused++
            else outcomes.other.push(String(err))
          }
        })
      )
      expect(outcomes.other).toEqual([])
      expect(outcomes.ok).toBeGreaterThan(20)
      expect(outcomes.refused).toBeGreaterThan(100)
      // SIGTERM drains and flushes each gateway's ledger
      await Promise.all(procs.map(stopProcess))

      const entries = await store.queryLedger({ team: 'a' })
      const ledger = entries.reduce((s, e) => s + e.cost_usd, 0)
      const keys = teamKeys('a')
      const [counter] = await store.readBudgets({ reservations: keys.reservations, index: keys.index, now: Date.now() })
      const spent = counter!.spentNanos / 1e9
      expect(counter!.reservedNanos).toBe(0)
      expect(spent).toBeLessThanOrEqual(CAP)
      expect(ledger).toBeLessThanOrEqual(CAP)
      expect(spent).toBeCloseTo(ledger, 6)
      expect(entries.length).toBe(fake.served.requests - served0.requests)
      expect(entries.filter((e) => e.stream).every((e) => e.cost_usd > 0)).toBe(true)
      const abortedEntries = entries.filter((e) => e.status === 'aborted')
      expect(abortedEntries.length).toBeGreaterThan(0)
      const upstream = ((fake.served.prompt - served0.prompt) * PRICE.input + (fake.served.completion - served0.completion) * PRICE.output) / 1e6
      // completed requests match exactly; a stream abandoned mid-way is charged what the gateway saw (tiktoken),
      // which may differ from what the upstream generated by a few tokens per abandoned stream
      const slack = (abortedEntries.length * 3 * PRICE.output) / 1e6
      expect(Math.abs(ledger - upstream)).toBeLessThanOrEqual(slack + 1e-9)
      const completed = entries.filter((e) => e.status === 'ok')
      expect(completed.every((e) => !e.estimated)).toBe(true)
    } finally {
      await Promise.all(procs.map(stopProcess))
      await store.close()
    }
  }, 60_000)
})

describe.runIf(runRedisTests)('Redis unreachable', () => {
  it('rejects or admits per on_store_error, reports it on /readyz, and recovers without a restart', async () => {
    const policies = { a: { budgets: [{ scope: 'team', limit_usd: 1, window: 'day' }] } }
    const common = { openaiUrl: fake.url, openaiKey: fake.apiKey, policies }
    const strict = await startTestGateway({ ...common, config: { store: { kind: 'redis', url: redis.url, prefix: 'strict:', on_store_error: 'reject' } } })
    const lenient = await startTestGateway({ ...common, config: { store: { kind: 'redis', url: redis.url, prefix: 'lenient:', on_store_error: 'allow' } } })
    fake.script = undefined
    const ask = (url: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0 }).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 })
    const spentOn = async (g: typeof strict) => {
      const k = teamKeys('a')
      const [c] = await g.gateway.store.readBudgets({ reservations: k.reservations, index: k.index, now: Date.now() })
      return c ? c.spentNanos : 0
    }
    try {
      await ask(strict.url)
      await redis.stop()
      const err = await ask(strict.url).then(() => undefined, (e: APIError) => e)
      expect(err?.status).toBe(503)
      expect(err?.code).toBe('budget_store_unavailable')
      const answered = await ask(lenient.url)
      expect(answered.choices[0]!.message.content).toBe('You said: hi')
      const ready = await fetch(`${strict.url}/readyz`)
      expect(ready.status).toBe(503)
      expect(((await ready.json()) as any).checks.store).toMatch(/unreachable/)

      await redis.start()
      const deadline = Date.now() + 10_000
      while ((await fetch(`${strict.url}/readyz`)).status !== 200) {
        if (Date.now() > deadline) throw new Error('gateway did not see Redis come back')
        await new Promise((r) => setTimeout(r, 100))
      }
      await ask(strict.url)
      expect(await spentOn(strict)).toBeGreaterThan(0)
      // the request admitted during the outage is charged once Redis is back (settlement retries)
      const until = Date.now() + 5000
      while ((await spentOn(lenient)) === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 100))
      expect(await spentOn(lenient)).toBeGreaterThan(0)
      const text = await lenient.gateway.metrics.registry.metrics()
      expect(text).toMatch(/sluice_budget_store_errors_total\{team="a",op="budget reservation",decision="allow"\} 1/)
    } finally {
      await strict.close(0)
      await lenient.close(0)
    }
  }, 30_000)
})

describe.runIf(runRedisTests)('Redis that stops answering', () => {
  it('fails a command after store.command_timeout_ms instead of holding the request, then recovers', async () => {
    const policies = { a: { budgets: [{ scope: 'team', limit_usd: 1, window: 'day' }] } }
    const common = { openaiUrl: fake.url, openaiKey: fake.apiKey, policies }
    const strict = await startTestGateway({ ...common, config: { store: { kind: 'redis', url: redis.url, prefix: 'paused-strict:', on_store_error: 'reject', command_timeout_ms: 300 } } })
    const lenient = await startTestGateway({ ...common, config: { store: { kind: 'redis', url: redis.url, prefix: 'paused-lenient:', on_store_error: 'allow', command_timeout_ms: 300 } } })
    fake.script = undefined
    const ask = (url: string) => new OpenAI({ baseURL: `${url}/v1`, apiKey: TEAM_A_KEY, maxRetries: 0, timeout: 10_000 }).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 })
    const pauser = await createRedisStore({ url: redis.url, prefix: 'pauser:' })
    try {
      await ask(strict.url)
      await ask(lenient.url)
      // connected, but no reply to anything for 4 s: what a paused, swapping or partitioned Redis looks like
      await pauser.client.call('CLIENT', 'PAUSE', '4000', 'ALL')
      const started = Date.now()
      const err = await ask(strict.url).then(() => undefined, (e: APIError) => e)
      expect(err?.status).toBe(503)
      expect(err?.code).toBe('budget_store_unavailable')
      const answered = await ask(lenient.url)
      expect(answered.choices[0]!.message.content).toBe('You said: hi')
      // both answered while Redis was still paused, not when it came back
      expect(Date.now() - started).toBeLessThan(3000)
      const deadline = Date.now() + 10_000
      for (;;) {
        const ok = await ask(strict.url).then(() => true, () => false)
        if (ok) break
        if (Date.now() > deadline) throw new Error('the gateway did not recover after the pause')
        await new Promise((r) => setTimeout(r, 200))
      }
    } finally {
      await pauser.close()
      await strict.close(0)
      await lenient.close(0)
    }
  }, 30_000)
})
