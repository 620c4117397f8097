import type { Budget } from './schema.js'
import type { WindowSpan } from './window.js'

/**
 * Store keys of one team's budgets and rate limits. Every key carries the team as a Redis Cluster hash tag
 * (`{team}`), so a script touching several of them stays in one slot. Parts are URI-encoded: braces, `|`
 * and `:` cannot leak into the layout.
 */
export function teamKeys(team: string) {
  const base = `budget:{${enc(team)}}`
  return {
    /** Reservation records (zset of expiries; `:d` hash of amounts). */
    reservations: `${base}:res`,
    /** Zset of the team's counters, scored by when they may be dropped. */
    index: `${base}:idx`,
    counter: (scope: Budget['scope'], id: string, window: Budget['window'], span: WindowSpan) => `${base}:c:${scope}:${window}:${span.label}:${enc(id)}`,
    bucket: (scope: string, id: string, kind: 'rpm' | 'tpm') => `ratelimit:{${enc(team)}}:${scope}:${kind}:${enc(id)}`
  }
}

/** Read a counter key back: scope, window, window label and scope id. */
export function parseCounterKey(key: string): { scope: Budget['scope']; window: Budget['window']; label: string; id: string } | undefined {
  const m = /:c:([a-z]+):([a-z]+):([^:]+):([^:]*)$/.exec(key)
  if (!m) return undefined
  return { scope: m[1] as Budget['scope'], window: m[2] as Budget['window'], label: m[3]!, id: decodeURIComponent(m[4]!) }
}

/** encodeURIComponent already encodes braces, `|` and `:` (as %7B %7D %7C %3A): nothing of the layout survives. */
function enc(s: string): string {
  return encodeURIComponent(s)
}
