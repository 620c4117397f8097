import { Hono } from 'hono'
import { DASHBOARD_CSS, DASHBOARD_HTML, DASHBOARD_JS } from '../src/dashboard/page.js'

/** Only the gateway's own script and style; no inline code, no other origin, no framing. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

/**
 * `GET /dashboard`: a self-contained page (HTML, CSS and script served here, nothing from a CDN) that reads the
 * JSON admin endpoints with the key the operator types in. The page itself holds no data and needs no key.
 *
 * @example
 * app.route('/', dashboardRoutes())
 */
export function dashboardRoutes() {
  const app = new Hono()
  const headers = (type: string) => ({ 'content-type': type, 'content-security-policy': CSP, 'x-content-type-options': 'nosniff', 'referrer-policy': 'no-referrer', 'cache-control': 'no-cache' })
  app.get('/dashboard', (c) => c.body(DASHBOARD_HTML, 200, headers('text/html; charset=utf-8')))
  app.get('/dashboard/app.js', (c) => c.body(DASHBOARD_JS, 200, headers('text/javascript; charset=utf-8')))
  app.get('/dashboard/app.css', (c) => c.body(DASHBOARD_CSS, 200, headers('text/css; charset=utf-8')))
  return app
}
