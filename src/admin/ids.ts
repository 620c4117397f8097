import { GatewayError } from '../errors.js'

/** Team names, users and key names: safe in store keys, URLs and CSV (no separators, no dots-only paths). */
const NAME = /^[A-Za-z0-9][\w.@+=-]{0,127}$/
/** A key id: the 12-hex prefix of the key's SHA-256 (what the ledger records as `key_id`). */
const KEY_ID = /^[0-9a-f]{12}$/

/**
 * Validate an id taken from a URL or body before it reaches a store key or a file path. Anything with `/`,
 * `..`, `:` or control characters is refused, so no id can address another record.
 *
 * @example
 * checkName(c.req.param('team'), 'team') // 'research'
 */
export function checkName(value: string | undefined, param: string): string {
  if (value === undefined || !NAME.test(value) || value.includes('..')) {
    throw new GatewayError(400, `${param} must be 1-128 characters of letters, digits and . _ @ + = - (starting with a letter or digit).`, { code: 'invalid_request', param })
  }
  return value
}

/** Validate a key id (12 lower-case hex characters). */
export function checkKeyId(value: string | undefined, param = 'id'): string {
  if (value === undefined || !KEY_ID.test(value)) {
    throw new GatewayError(400, `${param} must be a key id: the 12 lower-case hex characters shown by the key list.`, { code: 'invalid_request', param })
  }
  return value
}
