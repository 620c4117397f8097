import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { LedgerEntry } from '../src/ledger/types.js'
import { createRedisStore } from '../src/store/redis.js'
import type { Store } from '../src/store/types.js'
import { runRedisTests, startRedis, type TestRedis } from './helpers/redis.js'

const entry = (id: string, ts: number): LedgerEntry => ({
  id, request_id: `r-${id}`, ts, team: 'a', key_id: 'abc', alias: 'gpt-4o-mini', model: 'openai/gpt-4o-mini', provider: 'openai',
  surface: 'chat', stream: false, status: 'ok', tokens: { input: 1, output: 1, cached_input: 0, cache_write: 0 }, estimated: false,
  cost_usd: 0.001, latency_ms: 1, attempt: 1
})

describe.runIf(runRedisTests)('Redis store ledger', () => {
  let redis: TestRedis
  let store: Store
  beforeAll(async () => {
    redis = await startRedis()
    store = await createRedisStore({ url: redis.url, prefix: 't:' })
  })
  afterAll(async () => {
    await store?.close()
    await redis?.stop()
  })

  it('reads a batch written twice (a retried write whose reply was lost) once', async () => {
    const batch = [entry('e1', 1000), entry('e2', 2000)]
    await store.appendLedger(batch)
    await store.appendLedger(batch)
    const all = await store.queryLedger({ team: 'a' })
    expect(all.map((e) => e.id).sort()).toEqual(['e1', 'e2'])
  })

  it('filters by time and field, and honours the limit', async () => {
    await store.appendLedger([entry('e3', Date.now())])
    expect((await store.queryLedger({ since: Date.now() - 60_000 })).map((e) => e.id)).toEqual(['e3'])
    expect((await store.queryLedger({ team: 'b' })).length).toBe(0)
    expect((await store.queryLedger({ limit: 1 })).map((e) => e.id)).toEqual(['e3'])
  })

  it('sends the commands of one tick in one write, and a later batch without waiting for the replies', async () => {
    const socket = (store as unknown as { client: { stream: { _writev?: (...a: unknown[]) => void; _write: (...a: unknown[]) => void } } }).client.stream
    const { _write, _writev } = socket
    let writes = 0
    socket._write = function (this: unknown, ...args: unknown[]) {
      writes++
      return _write.apply(this, args)
    }
    socket._writev = function (this: unknown, ...args: unknown[]) {
      writes++
      return _writev!.apply(this, args)
    }
    try {
      // one tick: four commands, one syscall
      await Promise.all([store.cacheSet('k1', 'v1', 60_000), store.cacheSet('k2', 'v2', 60_000), store.cacheGet('k1'), store.get('k3')])
      expect(writes).toBe(1)
      // a second batch goes out before the first one's replies are read (we never return to the event loop
      // in between): no pipeline waits for another, as ioredis' auto-pipelining would
      writes = 0
      const tick = () => new Promise<void>((resolve) => process.nextTick(resolve))
      const first = store.cacheGet('k1')
      await tick()
      expect(writes).toBe(1)
      const second = store.cacheGet('k2')
      await tick()
      expect(writes).toBe(2)
      expect(await first).toBe('v1')
      expect(await second).toBe('v2')
    } finally {
      socket._write = _write
      socket._writev = _writev
    }
    expect(await store.cacheGet('k2')).toBe('v2')
  })

  it('with auto_pipelining, hands the commands to ioredis\' auto-pipeline instead', async () => {
    const piped = await createRedisStore({ url: redis.url, prefix: 't:', autoPipelining: true })
    try {
      const client = (piped as unknown as { client: { autoPipelineQueueSize: number } }).client
      const pending = Promise.all([piped.cacheSet('p1', 'v', 60_000), piped.cacheGet('p1')])
      expect(client.autoPipelineQueueSize).toBe(2)
      await pending
      expect(await piped.cacheGet('p1')).toBe('v')
    } finally {
      await piped.close()
    }
  })
})
