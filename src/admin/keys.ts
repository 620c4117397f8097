import { randomBytes } from 'node:crypto'
import { hashKey, keyIdOf } from '../auth/index.js'
import { GatewayError } from '../errors.js'
import type { Store } from '../store/types.js'

/** What the store holds for a key made through the admin API (`key:<sha256>`): never the key itself. */
export interface StoredKey {
  sha256: string
  team: string
  user?: string
  name?: string
  /** ISO time. */
  created: string
  revoked?: boolean
  revoked_at?: string
  /** Key id of the key this one replaced (rotation). */
  rotated_from?: string
}

/** A key as the admin API lists it: no secret, no full hash. */
export interface KeyView {
  id: string
  team: string
  user?: string
  name?: string
  created?: string
  revoked: boolean
  revoked_at?: string
  rotated_from?: string
  /** `config`: listed in the gateway config (revoke by editing it); `api`: made through the admin API. */
  source: 'api' | 'config'
}

export interface ConfigKey {
  key?: string
  key_sha256?: string
  team: string
  user?: string
  name?: string
}

/**
 * Virtual keys made at run time, kept in the gateway's store so every instance sees them. A key is shown once,
 * on creation; the store keeps its SHA-256 (`key:<sha256>`, the record the gateway's keyring reads), a
 * key-id pointer (`keyid:<id>`) and a per-team slot list numbered by an atomic counter, so concurrent creates
 * on several instances never lose a listing.
 *
 * @example
 * const keys = createKeyStore(store)
 * const { key, view } = await keys.create({ team: 'research', user: 'ada' })
 * await keys.revoke(view.id)
 */
export function createKeyStore(store: Store, opts: { now?: () => number } = {}) {
  const now = () => new Date((opts.now ?? Date.now)()).toISOString()

  const read = async (sha: string): Promise<StoredKey | undefined> => {
    const raw = await store.get(`key:${sha}`)
    return raw ? (JSON.parse(raw) as StoredKey) : undefined
  }

  const create = async (input: { team: string; user?: string; name?: string; rotated_from?: string }) => {
    const key = `sk-sluice-${randomBytes(24).toString('base64url')}`
    const sha256 = hashKey(key)
    const record: StoredKey = { sha256, team: input.team, user: input.user, name: input.name, created: now(), rotated_from: input.rotated_from }
    await store.set(`key:${sha256}`, JSON.stringify(record))
    await store.set(`keyid:${keyIdOf(sha256)}`, sha256)
    const slot = await store.incrBy(`keys:seq:${input.team}`, 1)
    await store.set(`keys:slot:${input.team}:${slot}`, sha256)
    return { key, view: view(record) }
  }

  /** The stored record behind a key id, or a 404. */
  const find = async (id: string): Promise<StoredKey> => {
    const sha = await store.get(`keyid:${id}`)
    const record = sha ? await read(sha) : undefined
    if (!record) throw new GatewayError(404, `No key with id "${id}" was made through the admin API.`, { code: 'key_not_found', param: 'id' })
    return record
  }

  return {
    create,
    find,

    /** Keys of one team made through the admin API, oldest first. */
    async list(team: string): Promise<KeyView[]> {
      const count = Number((await store.get(`keys:seq:${team}`)) ?? 0)
      const out: KeyView[] = []
      for (let slot = 1; slot <= count; slot++) {
        const sha = await store.get(`keys:slot:${team}:${slot}`)
        const record = sha ? await read(sha) : undefined
        if (record) out.push(view(record))
      }
      return out
    },

    /** Mark a key revoked; the gateway refuses it from the next request on (every instance reads the store). */
    async revoke(id: string): Promise<KeyView> {
      const record = await find(id)
      if (!record.revoked) {
        record.revoked = true
        record.revoked_at = now()
        await store.set(`key:${record.sha256}`, JSON.stringify(record))
      }
      return view(record)
    },

    /** Issue a new key with the same team, user and name, then revoke the old one. */
    async rotate(id: string) {
      const old = await find(id)
      if (old.revoked) throw new GatewayError(409, `Key "${id}" is already revoked; create a new key instead.`, { code: 'key_revoked', param: 'id' })
      const made = await create({ team: old.team, user: old.user, name: old.name, rotated_from: id })
      old.revoked = true
      old.revoked_at = now()
      await store.set(`key:${old.sha256}`, JSON.stringify(old))
      return { ...made, revoked: view(old) }
    }
  }
}

export type KeyStore = ReturnType<typeof createKeyStore>

/** Keys listed in the gateway config, in the same shape (they cannot be revoked through the API). */
export function configKeyViews(keys: ConfigKey[]): KeyView[] {
  return keys.map((k) => ({ id: keyIdOf(k.key_sha256 ?? hashKey(k.key!)), team: k.team, user: k.user, name: k.name, revoked: false, source: 'config' as const }))
}

function view(r: StoredKey): KeyView {
  return { id: keyIdOf(r.sha256), team: r.team, user: r.user, name: r.name, created: r.created, revoked: r.revoked === true, revoked_at: r.revoked_at, rotated_from: r.rotated_from, source: 'api' }
}
