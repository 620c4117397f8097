import { request } from 'undici'

/** An admin API call that the gateway refused or could not answer; the message is the gateway's own. */
export class AdminClientError extends Error {
  constructor(
    message: string,
    readonly status?: number
  ) {
    super(message)
  }
}

/**
 * A small client of a running gateway's admin API, for the CLI. Keys are made by the gateway itself, so
 * they land in whatever store it runs on (memory or Redis) and every instance sees them.
 *
 * @example
 * const admin = createAdminClient({ url: 'http://127.0.0.1:8080', key: process.env.SLUICE_ADMIN_KEY! })
 * const made = await admin.call('POST', '/admin/keys', { team: 'research' })
 */
export function createAdminClient(opts: { url: string; key: string; timeoutMs?: number }) {
  const base = opts.url.replace(/\/+$/, '')
  return {
    async call<T = any>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
      let res
      try {
        res = await request(`${base}${path}`, {
          method,
          headers: { authorization: `Bearer ${opts.key}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          body: body !== undefined ? JSON.stringify(body) : undefined,
          headersTimeout: opts.timeoutMs ?? 30_000,
          bodyTimeout: opts.timeoutMs ?? 30_000
        })
      } catch (err) {
        throw new AdminClientError(`cannot reach the gateway at ${base}: ${(err as Error).message}`)
      }
      const text = await res.body.text()
      let json: any
      try {
        json = JSON.parse(text)
      } catch {
        json = undefined
      }
      if (res.statusCode >= 400) throw new AdminClientError(`${res.statusCode}: ${json?.error?.message ?? json?.error ?? (text.slice(0, 200) || 'no body')}`, res.statusCode)
      return json as T
    }
  }
}
