import { Redis, Cluster } from 'ioredis'
import type { LedgerEntry, LedgerFilter } from '../ledger/types.js'
import { matchesLedgerFilter } from '../ledger/filter.js'
import type { BudgetCounterSpec, BudgetCounterState, SettleBudgetRequest, Store } from './types.js'
import { READ_LUA, RATE_LIMIT_LUA, RESERVE_LUA, RESET_LUA, SETTLE_LUA } from '../budget/lua.js'
import { coalesceWrites, writeInBackground, type WriteBatching } from './coalesce.js'

export interface RedisStoreOptions {
  url?: string
  /** Cluster seed nodes; a Cluster client is used when given. */
  urls?: string[]
  prefix?: string
  maxLedgerEntries?: number
  /**
   * ioredis' auto-pipelining instead of one write per tick (`coalesceWrites`): commands wait for the batch in
   * flight, so CPU per request drops further but latency at moderate load rises (README, Budgets, "Redis").
   */
  autoPipelining?: boolean
  /**
   * How long a connection holds commands to share one write (`coalesceWrites`): `turn` (default), one write per
   * event-loop turn for the least CPU, or `tick`, where a request's commands leave at the end of their tick.
   */
  batchWrites?: WriteBatching
  /**
   * A command without a reply after this long fails (ioredis `commandTimeout`; default 2000 ms). A Redis that
   * is connected but does not answer (paused, swapping, a partition without a reset) would otherwise hold the
   * request until TCP gives up: admission then follows `on_store_error`, a cache read is a miss.
   */
  commandTimeoutMs?: number
  /**
   * When given, a Redis that cannot be reached at start is reported here instead of failing the start: the store
   * is returned not connected (commands fail fast, `ping` says where it cannot connect) and ioredis keeps
   * reconnecting, so a gateway restarted during a Redis blip comes up not ready instead of crash-looping.
   */
  onUnreachableAtStart?: (err: Error, where: string) => void
}

export type RedisClient = Redis | Cluster

// INCRBYFLOAT, then set the TTL only if the key was new: windows must not slide on every write.
const INCR_WITH_TTL = `
local v = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and (ARGV[3] == '1' or redis.call('PTTL', KEYS[1]) == -1) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
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
  const autoPipelining = opts.autoPipelining ?? false
  const common = { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true, enableAutoPipelining: autoPipelining, commandTimeout: opts.commandTimeoutMs ?? 2000 }
  const client: RedisClient = opts.urls?.length
    ? new Cluster(opts.urls.map(parseNode), { redisOptions: common, enableOfflineQueue: false, lazyConnect: true })
    : new Redis(opts.url ?? 'redis://127.0.0.1:6379', { ...common, retryStrategy: (n) => Math.min(50 * n, 1000) })
  const where = redactedLocation(opts)
  let lastError: string | undefined
  client.on('error', (err: Error) => {
    // surfaced through failing commands and ping(); an unhandled 'error' event would crash the process
    lastError = err.message
  })
  client.on('ready', () => (lastError = undefined))
  // commands issued in one turn of the event loop (the default batch_writes: turn), or with batch_writes: tick in
  // one tick (a settle and a cache write, other requests' reservations), share a write syscall (README, Budgets,
  // "Redis"); auto-pipelining's batches are one write each already
  if (!autoPipelining) {
    // undefined takes coalesceWrites' own default (turn)
    const batching = opts.batchWrites
    if (client instanceof Cluster) client.on('+node', (node: Redis) => node.on('connect', () => coalesceWrites(node.stream, batching)))
    else client.on('connect', () => coalesceWrites(client.stream, batching))
  }
  try {
    await client.connect()
  } catch (err) {
    if (!opts.onUnreachableAtStart) {
      client.disconnect()
      throw new Error(`cannot connect to Redis at ${where}: ${lastError ?? (err as Error).message}`)
    }
    opts.onUnreachableAtStart(new Error(lastError ?? (err as Error).message), where)
  }
  client.defineCommand('sluiceIncr', { numberOfKeys: 1, lua: INCR_WITH_TTL })
  // budget and rate-limit scripts: one atomic round trip each (EVALSHA, EVAL on a script-cache miss)
  const scripts = { sluiceReserve: RESERVE_LUA, sluiceSettle: SETTLE_LUA, sluiceBudgetRead: READ_LUA, sluiceBudgetReset: RESET_LUA, sluiceRateLimit: RATE_LIMIT_LUA }
  for (const [name, lua] of Object.entries(scripts)) client.defineCommand(name, { lua })
  const run = (name: keyof typeof scripts, keys: string[], args: (string | number)[]) =>
    (client as unknown as Record<string, (n: number, ...a: (string | number)[]) => Promise<unknown>>)[name]!(keys.length, ...keys, ...args)
  const ledgerKey = `${prefix}ledger`
  /** Commands sent with writeInBackground whose replies have not come yet: no request waits on them (`idle`). */
  let backgroundInFlight = 0
  const inBackground = async <T>(commands: number, send: () => Promise<T>): Promise<T> => {
    backgroundInFlight += commands
    try {
      return await writeInBackground(send)
    } finally {
      backgroundInFlight -= commands
    }
  }
  const k = (key: string) => prefix + key

  const settle = async (req: Omit<SettleBudgetRequest, 'actualNanos' | 'chargeWithoutReservation'>, mode: 'settle' | 'charge' | 'release', actual: number) => {
    const args: (string | number)[] = [req.now, req.id, nanos(actual), mode]
    for (const c of req.counters) args.push(nanos(c.limitNanos), c.expireAt, (c.alertAt ?? []).join(','))
    const keys = [k(req.reservations), k(`${req.reservations}:d`), k(req.index), ...req.counters.map((c) => k(c.key))]
    const [status, states, fired] = (await run('sluiceSettle', keys, args)) as [string, string[], string[]]
    const alerts: { counter: number; threshold: number }[] = []
    for (let i = 0; i < fired.length; i += 2) alerts.push({ counter: Number(fired[i]) - 1, threshold: Number(fired[i + 1]) })
    return { status: status as 'settled', counters: pairs(req.counters, states), alerts }
  }

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
    async incrBy(key, amount, ttlMs, slide) {
      const v = await (client as unknown as { sluiceIncr(k: string, a: number, t: number, s: number): Promise<string> }).sluiceIncr(k(key), amount, ttlMs ?? 0, slide ? 1 : 0)
      return Number(v)
    },
    // no request's command written (or corked for this batch's write) and not yet answered, on any node: cache
    // writes and ledger appends in flight do not count (the previous request's tail, which nobody waits on)
    idle:
      client instanceof Cluster
        ? () => client.nodes('master').reduce((n, node) => n + node.commandQueue.length, 0) <= backgroundInFlight
        : () => client.commandQueue.length <= backgroundInFlight,
    cacheGet: (key) => client.get(k(`cache:${key}`)),
    async cacheSet(key, value, ttlMs) {
      // after the answer: nobody waits on it (a read of the same key waits in the cache step)
      await inBackground(1, () => client.set(k(`cache:${key}`), value, 'PX', ttlMs))
    },
    async appendLedger(entries) {
      if (entries.length === 0) return
      const pipe = client.pipeline()
      for (const e of entries) pipe.xadd(ledgerKey, 'MAXLEN', '~', String(maxLedger), '*', 'e', JSON.stringify(e))
      const results = await inBackground(entries.length, () => pipe.exec())
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
      // Writes are at-least-once (a batch whose reply was lost is written again): entry ids make reads exactly-once.
      const seen = new Set<string>()
      for (;;) {
        const batch = await client.xrevrange(ledgerKey, end, start, 'COUNT', 1000)
        for (const [, fields] of batch) {
          const entry = JSON.parse(fields[1]!) as LedgerEntry
          if (seen.has(entry.id)) continue
          seen.add(entry.id)
          if (matchesLedgerFilter(entry, filter)) out.push(entry)
          if (out.length >= limit) return out.reverse()
        }
        if (batch.length < 1000) break
        end = '(' + batch[batch.length - 1]![0]
      }
      return out.reverse()
    },
    async reserveBudget(req) {
      const args: (string | number)[] = [req.now, req.id, req.now + req.ttlMs, nanos(req.amountNanos)]
      for (const c of req.counters) args.push(nanos(c.limitNanos), c.shadow ? 1 : 0, c.expireAt)
      const keys = [k(req.reservations), k(`${req.reservations}:d`), k(req.index), ...req.counters.map((c) => k(c.key))]
      const [refused, states] = (await run('sluiceReserve', keys, args)) as [number, string[]]
      return { ok: refused === 0, refused: refused > 0 ? refused - 1 : undefined, counters: pairs(req.counters, states) }
    },
    async settleBudget(req) {
      return settle(req, req.chargeWithoutReservation ? 'charge' : 'settle', req.actualNanos)
    },
    async releaseBudget(req) {
      return settle(req, 'release', 0)
    },
    async readBudgets(req) {
      const keys = [k(req.reservations), k(`${req.reservations}:d`), k(req.index), ...(req.counters ?? []).map(k)]
      const flat = (await run('sluiceBudgetRead', keys, [req.now])) as string[]
      const out: BudgetCounterState[] = []
      for (let i = 0; i < flat.length; i += 3) out.push({ key: flat[i]!.slice(prefix.length), spentNanos: Number(flat[i + 1]), reservedNanos: Number(flat[i + 2]) })
      return out
    },
    async resetBudgets(counters) {
      if (counters.length) await run('sluiceBudgetReset', counters.map(k), [])
    },
    async rateLimit(req) {
      const args: (string | number)[] = [req.now, req.force ? 1 : 0]
      for (const b of req.buckets) args.push(b.capacity, b.windowMs, b.cost)
      const [denied, wait, levels] = (await run('sluiceRateLimit', req.buckets.map((b) => k(b.key)), args)) as [number, number, string[]]
      return { allowed: denied === 0, denied: denied > 0 ? denied - 1 : undefined, retryAfterMs: denied > 0 ? wait : undefined, remaining: levels.map(Number) }
    },
    async ping() {
      // not connected: say where and why, not ioredis's "Stream isn't writeable"
      if (client.status !== 'ready') throw new Error(`cannot connect to Redis at ${where}${lastError ? `: ${lastError}` : ` (${client.status})`}`)
      await client.ping()
    },
    async close() {
      client.disconnect()
    }
  }
}

/** The Redis URL(s) without credentials, for logs and /readyz. */
export function redactedLocation(opts: { url?: string; urls?: string[] }): string {
  const redact = (url: string) => {
    try {
      const u = new URL(url.includes('://') ? url : `redis://${url}`)
      u.username = ''
      u.password = ''
      return u.toString().replace(/\/$/, '')
    } catch {
      return '(unparseable url)'
    }
  }
  return opts.urls?.length ? opts.urls.map(redact).join(', ') : redact(opts.url ?? 'redis://127.0.0.1:6379')
}

/** Integer nano-USD as a string for Lua (never exponent form). */
function nanos(n: number): string {
  return String(Math.max(0, Math.round(n)))
}

function pairs(counters: BudgetCounterSpec[], flat: string[]): BudgetCounterState[] {
  return counters.map((c, i) => ({ key: c.key, spentNanos: Number(flat[2 * i]), reservedNanos: Number(flat[2 * i + 1]) }))
}

function parseNode(url: string): { host: string; port: number } {
  const u = new URL(url.includes('://') ? url : `redis://${url}`)
  return { host: u.hostname, port: Number(u.port || 6379) }
}
