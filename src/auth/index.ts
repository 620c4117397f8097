import { hash, timingSafeEqual } from 'node:crypto'
import { GatewayError } from '../errors.js'
import type { Principal } from '../types.js'

export interface KeyRecord {
  /** SHA-256 of the key, hex. The key itself is never kept. */
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
 * Resolve virtual keys to principals. Keys are held as SHA-256 hashes; the lookup hashes the presented key
 * and confirms the match with a constant-time comparison. `extra` looks up keys created at run time (admin API).
 *
 * @example
 * const identify = createKeyring([{ sha256: hashKey('sk-team-a'), team: 'a' }])
 * const principal = await identify('sk-team-a')
 */
export function createKeyring(records: KeyRecord[], extra?: (sha256: string) => Promise<KeyRecord | undefined>) {
  const byHash = new Map<string, { record: KeyRecord; digest: Buffer; principal: Principal }>()
  for (const r of records) {
    byHash.set(r.sha256, { record: r, digest: Buffer.from(r.sha256, 'hex'), principal: { team: r.team, keyId: keyIdOf(r.sha256), user: r.user } })
  }

  return async function identify(key: string | undefined): Promise<Principal> {
    if (!key) throw new GatewayError(401, 'Missing API key. Send it as "Authorization: Bearer <key>" or "x-api-key: <key>".', { type: 'authentication_error', code: 'missing_api_key' })
    const sha = hashKey(key)
    const hit = byHash.get(sha)
    if (hit && timingSafeEqual(hit.digest, Buffer.from(sha, 'hex'))) return hit.principal
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
