import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { storeSchema } from '../src/config/schema.js'
import { createStore } from '../src/server.js'
import { createRedisStore } from '../src/store/redis.js'
import type { Store } from '../src/store/types.js'
import { ledgerEntry } from './helpers/ledger.js'
import { countSocketWrites, runRedisTests, startRedis, type TestRedis, type WritableSocket } from './helpers/redis.js'

const entry = ledgerEntry

describe.runIf(runRedisTests)('Redis store ledger', () => {
  let redis: TestRedis
  let store: Store
  beforeAll(async () => {
    redis = await startRedis()
    store = await createRedisStore({ url: redis.url, prefix: 't:', batchWrites: 'tick' })
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

  /** Counts the socket writes (syscalls) of a store's connection while `body` runs. */
  const countWrites = (of: Store, body: (writes: () => number) => Promise<void>) =>
    countSocketWrites([(of as unknown as { client: { stream: WritableSocket } }).client.stream], body)
  const tick = () => new Promise<void>((resolve) => process.nextTick(resolve))
  const turn = () => new Promise<void>((resolve) => setImmediate(resolve))

  it('is idle only while no command awaits a reply (store.reserve_early reserves early only then)', async () => {
    expect(store.idle?.()).toBe(true)
    const pending = store.cacheGet('idle-check')
    // issued, and corked for this batch's write: already counted
    expect(store.idle?.()).toBe(false)
    await pending
    expect(store.idle?.()).toBe(true)
    // a cache write or ledger append in flight is nobody's wait: still idle, and busy again with a read beside it
    const writes = [store.cacheSet('idle-check', 'v', 60_000), store.appendLedger([entry('idle-1', Date.now())])]
    expect(store.idle?.()).toBe(true)
    const read = store.cacheGet('idle-check')
    expect(store.idle?.()).toBe(false)
    await Promise.all([...writes, read])
    expect(store.idle?.()).toBe(true)
  })

  it('sends the commands of one tick in one write, background writes (cache, ledger) those of one turn', async () => {
    await countWrites(store, async (writes) => {
      // one tick: four commands, one syscall, at the end of the tick
      const one = [store.cacheGet('k0'), store.cacheGet('k1'), store.get('k3'), store.get('k4')]
      expect(writes()).toBe(0)
      await tick()
      expect(writes()).toBe(1)
      await Promise.all(one)
      // cache writes and ledger appends over several ticks of one turn: one syscall, at the end of the turn
      const before = writes()
      const background: Promise<unknown>[] = [store.cacheSet('k1', 'v1', 60_000)]
      await tick()
      background.push(store.cacheSet('k2', 'v2', 60_000))
      await tick()
      background.push(store.appendLedger([entry('t1', Date.now())]))
      await tick()
      expect(writes()).toBe(before)
      await turn()
      expect(writes()).toBe(before + 1)
      await Promise.all(background)
      // a foreground command takes the held background ones along at the end of its own tick
      const mixed: Promise<unknown>[] = [store.cacheSet('k5', 'v5', 60_000)]
      await tick()
      mixed.push(store.cacheGet('k5'))
      await tick()
      expect(writes()).toBe(before + 2)
      expect(await mixed[1]).toBe('v5')
    })
  })

  it('with batch_writes: turn, sends the commands of one turn in one write, and a later batch without waiting for replies', async () => {
    // from a config file's `store` section, as a gateway makes it
    const turned = await createStore(storeSchema.parse({ kind: 'redis', url: redis.url, prefix: 't:', batch_writes: 'turn' }))
    try {
      const client = (turned as unknown as { client: { blpop(key: string, timeout: number): Promise<unknown> } }).client
      await countWrites(turned, async (writes) => {
        // one turn, several ticks (as requests' continuations issue them): six commands, one syscall
        const one: Promise<unknown>[] = [turned.cacheSet('k1', 'v1', 60_000), turned.cacheGet('k1')]
        await tick()
        one.push(turned.get('k3'))
        await Promise.resolve()
        one.push(turned.get('k4'))
        await tick()
        one.push(turned.appendLedger([entry('t2', Date.now())]), turned.cacheGet('k2'))
        expect(writes()).toBe(0)
        await Promise.all(one)
        expect(writes()).toBe(1)
        // Redis answers nothing on this connection while a BLPOP blocks it; the next batch still goes out:
        // no batch waits for another's replies, as ioredis' auto-pipelining would
        let blocked = true
        const blocking = client.blpop('t:never', 1).then(() => (blocked = false))
        await turn()
        expect(writes()).toBe(2)
        const after = turned.cacheGet('k1')
        await turn()
        expect(writes()).toBe(3)
        expect(blocked).toBe(true)
        await blocking
        expect(await after).toBe('v1')
      })
    } finally {
      await turned.close()
    }
  })

  it('without batch_writes, batches per turn: the commands of several ticks in one write at the turn\'s end', async () => {
    const plain = await createStore(storeSchema.parse({ kind: 'redis', url: redis.url, prefix: 't:' }))
    try {
      await countWrites(plain, async (writes) => {
        await turn()
        const sent: Promise<unknown>[] = [plain.get('k3'), plain.cacheGet('k1')]
        await tick()
        sent.push(plain.get('k4'))
        await tick()
        expect(writes()).toBe(0)
        await turn()
        expect(writes()).toBe(1)
        await Promise.all(sent)
      })
    } finally {
      await plain.close()
    }
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
