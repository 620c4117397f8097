import { Redis, Cluster } from 'ioredis'
import type { LedgerEntry, LedgerFilter } from '../ledger/types.js'
import { matchesLedgerFilter } from '../ledger/filter.js'
import type { Store } from './types.js'

export interface RedisStoreOptions {
  url?: string
  /** Cluster seed nodes; a Cluster client is used when given. */
  urls?: string[]
  prefix?: string
  maxLedgerEntries?: number
}

export type RedisClient = Redis | Cluster

// INCRBYFLOAT, then set the TTL only if the key was new: windows must not slide on every write.
const INCR_WITH_TTL = `
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return v`

/**
 * Shared state for many gateway instances, on Redis (single node or Cluster) through ioredis.
 * Commands fail fast while Redis is away (no offline queue), so callers can apply their fail mode
 * instead of hanging.
 *
 * @example
 * const store = await createRedisStore({ url: 'redis://127.0.0.1:6379', prefix: 'sluice:' })
 */
export async function createRedisStore(opts: RedisStoreOptions): Promise<Store & { readonly client: RedisClient; readonly prefix: string }> {
  const prefix = opts.prefix ?? 'sluice:'
  const maxLedger = opts.maxLedgerEntries ?? 1_000_000
  const common = { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true }
  const client: RedisClient = opts.urls?.length
    ? new Cluster(opts.urls.map(parseNode), { redisOptions: common, enableOfflineQueue: false })
    : new Redis(opts.url ?? 'redis://127.0.0.1:6379', { ...common, retryStrategy: (n) => Math.min(50 * n, 1000) })
  client.on('error', () => {
    // surfaced through failing commands and ping(); an unhandled 'error' event would crash the process
  })
  await client.connect()
  client.defineCommand('sluiceIncr', { numberOfKeys: 1, lua: INCR_WITH_TTL })
  const ledgerKey = `${prefix}ledger`
  const k = (key: string) => prefix + key

  return {
    kind: 'redis',
    client,
    prefix,
    get: (key) => client.get(k(key)),
    async set(key, value, ttlMs) {
      if (ttlMs) await client.set(k(key), value, 'PX', ttlMs)
      else await client.set(k(key), value)
    },
    async del(key) {
      await client.del(k(key))
    },
    async incrBy(key, amount, ttlMs) {
      const v = await (client as unknown as { sluiceIncr(k: string, a: number, t: number): Promise<string> }).sluiceIncr(k(key), amount, ttlMs ?? 0)
      return Number(v)
    },
    cacheGet: (key) => client.get(k(`cache:${key}`)),
    async cacheSet(key, value, ttlMs) {
      await client.set(k(`cache:${key}`), value, 'PX', ttlMs)
    },
    async appendLedger(entries) {
      if (entries.length === 0) return
      const pipe = client.pipeline()
      for (const e of entries) pipe.xadd(ledgerKey, 'MAXLEN', '~', String(maxLedger), '*', 'e', JSON.stringify(e))
      const results = await pipe.exec()
      const failed = results?.find(([err]) => err)
      if (failed) throw failed[0]
    },
    async queryLedger(filter: LedgerFilter) {
      const out: LedgerEntry[] = []
      const limit = filter.limit ?? Infinity
      // Stream ids start with the insertion time, which is never before the entry's own ts
      // (replayed entries are inserted later), so `since` bounds the scan and `until` is filtered.
      let end = '+'
      const start = filter.since !== undefined ? String(filter.since) : '-'
      for (;;) {
        const batch = await client.xrevrange(ledgerKey, end, start, 'COUNT', 1000)
        for (const [, fields] of batch) {
          const entry = JSON.parse(fields[1]!) as LedgerEntry
          if (matchesLedgerFilter(entry, filter)) out.push(entry)
          if (out.length >= limit) return out.reverse()
        }
        if (batch.length < 1000) break
        end = '(' + batch[batch.length - 1]![0]
      }
      return out.reverse()
    },
    async ping() {
      await client.ping()
    },
    async close() {
      client.disconnect()
    }
  }
}

function parseNode(url: string): { host: string; port: number } {
  const u = new URL(url.includes('://') ? url : `redis://${url}`)
  return { host: u.hostname, port: Number(u.port || 6379) }
}
