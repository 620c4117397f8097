/** A map whose entries carry their own deadline, and how to read it. */
export interface ExpiringMap<V> {
  entries: Map<string, V>
  /** True when the entry's deadline has passed at `now`. */
  expired(value: V, now: number): boolean
}

/**
 * Deletes expired entries that nothing reads any more, a few at a time. The memory store drops an expired
 * entry when it is read; keys that are never read again (yesterday's budget window, a finished session's
 * guard state, an idle user's rate-limit bucket) stayed for good, so memory grew with every new session and
 * window. Each `step` looks at up to `batch` entries of each map, resuming where the last one stopped (a map's
 * iterator stays valid while entries come and go), so a pass over a large map never blocks the event loop.
 *
 * @example
 * const sweep = createExpirySweep([{ entries: map, expired: (h, now) => h.expiresAt !== 0 && h.expiresAt <= now }])
 * setInterval(() => sweep.step(Date.now()), 1000).unref()
 */
export function createExpirySweep(maps: ExpiringMap<unknown>[], batch = 5000): { step(now: number): number } {
  const cursors = maps.map((m) => ({ m, it: m.entries.entries() }))
  return {
    step(now) {
      let removed = 0
      for (const c of cursors) {
        for (let i = 0; i < batch; i++) {
          const r = c.it.next()
          if (r.done) {
            // the next step starts a new pass
            c.it = c.m.entries.entries()
            break
          }
          const [key, value] = r.value
          if (c.m.expired(value, now)) {
            c.m.entries.delete(key)
            removed++
          }
        }
      }
      return removed
    }
  }
}
