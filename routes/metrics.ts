import { Hono } from 'hono'
import type { Gateway } from '../src/gateway.js'

/** `/metrics` in the Prometheus text format (prom-client). */
export function metricsRoutes(gateway: Gateway) {
  const app = new Hono()
  app.get('/metrics', async (c) => {
    gateway.metrics.ledgerPending.set(gateway.ledger.pending())
    const registry = gateway.metrics.registry
    return c.body(await registry.metrics(), 200, { 'content-type': registry.contentType })
  })
  return app
}
