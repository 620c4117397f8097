import { Hono } from 'hono'
import type { Gateway } from '../src/gateway.js'

/** `/healthz`: the process is up. `/readyz`: config loaded and stores reachable (503 otherwise, with reasons). */
export function healthRoutes(gateway: Gateway, extra: () => Record<string, string> = () => ({})) {
  const app = new Hono()
  app.get('/healthz', (c) => c.json({ status: 'ok' }))
  app.get('/readyz', async (c) => {
    const { ok, checks } = await gateway.readiness()
    const more = extra()
    const healthy = ok && Object.values(more).every((v) => v === 'ok')
    return c.json({ status: healthy ? 'ready' : 'not_ready', checks: { ...checks, ...more } }, healthy ? 200 : 503)
  })
  return app
}
