import { hash, timingSafeEqual } from 'node:crypto'
import { GatewayError } from '../errors.js'
import type { Principal } from '../types.js'

export interface KeyRecord {
  /** SHA-256 of the key, hex. The record never holds the key itself. */
  sha256: string
  team: string
  user?: string
  name?: string
}

/** Hex SHA-256 of a key: the only form in which keys are stored. */
export function hashKey(key: string): string {
  return hash('sha256', key, 'hex')
}

/** The short, loggable id of a key: a prefix of its hash. */
export function keyIdOf(sha256: string): string {
  return sha256.slice(0, 12)
}

/** The presented key from `Authorization: Bearer` or `x-api-key`. */
export function presentedKey(headers: { authorization?: string; 'x-api-key'?: string }): string | undefined {
  const auth = headers.authorization
  if (auth && auth.length > 7 && auth.slice(0, 7).toLowerCase() === 'bearer ') return auth.slice(7).trim()
  return headers['x-api-key']?.trim() || undefined
}

/**
 * Resolve virtual keys to principals. Keys are held as SHA-256 hashes; the lookup hashes the presented key and
 * finds its principal by that hash. `extra` looks up keys created at run time (admin API).
 *
 * A config key, once presented and matched, is remembered as presented for the keyring's life (until the next
 * config reload builds a new one), so a key that comes again skips its SHA-256: one native call that costs ~25 µs
 * on the cold CPU a sequential request meets (README, Performance). Only keys that matched a config record are
 * kept, so there are at most as many as the config lists, and only in this process's memory: nothing is written
 * anywhere, and keys made through the admin API are looked up every time (a revocation counts from the next
 * request on every instance).
 *
 * @example
 * const identify = createKeyring([{ sha256: hashKey('sk-team-a'), team: 'a' }])
 * const principal = await identify('sk-team-a')
 */
export function createKeyring(records: KeyRecord[], extra?: (sha256: string) => Promise<KeyRecord | undefined>) {
  const byHash = new Map<string, Principal>()
  for (const r of records) byHash.set(r.sha256, { team: r.team, keyId: keyIdOf(r.sha256), user: r.user })
  const presented = new Map<string, Principal>()

  return async function identify(key: string | undefined): Promise<Principal> {
    if (!key) throw new GatewayError(401, 'Missing API key. Send it as "Authorization: Bearer <key>" or "x-api-key: <key>".', { type: 'authentication_error', code: 'missing_api_key' })
    const known = presented.get(key)
    if (known) return known
    const sha = hashKey(key)
    // the map compared the whole hash: a key whose hash matches is the key (no timing to protect, the hash's bits
    // reveal nothing of another key's)
    const hit = byHash.get(sha)
    if (hit) {
      presented.set(key, hit)
      return hit
    }
    const found = extra ? await extra(sha) : undefined
    if (found) return { team: found.team, keyId: keyIdOf(sha), user: found.user }
    throw new GatewayError(401, 'Incorrect API key provided.', { type: 'authentication_error', code: 'invalid_api_key' })
  }
}

/** Constant-time check of the admin key. */
export function isAdminKey(presented: string | undefined, adminSha256: string | undefined): boolean {
  if (!presented || !adminSha256) return false
  return timingSafeEqual(Buffer.from(hashKey(presented), 'hex'), Buffer.from(adminSha256, 'hex'))
}
