/**
 * Poll `cond` every `everyMs` until it holds or `ms` pass; resolves with its last answer (never throws, so the
 * caller's `expect` says what was waited for).
 *
 * @example
 * expect(await waitFor(() => gw.gateway.inflight() === 0)).toBe(true)
 * expect(await waitFor(async () => (await reloads()) > 0, 5000, 100)).toBe(true)
 */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 3000, everyMs = 20): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await cond()) return true
    await new Promise((r) => setTimeout(r, everyMs))
  }
  return cond()
}
