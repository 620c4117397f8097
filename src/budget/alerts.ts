import { request } from 'undici'

export interface BudgetAlert {
  team: string
  scope: string
  /** The scope's id (key id, user, session, tag, agent; the team for scope team). */
  id: string
  window: string
  window_start: string
  window_end: string | null
  threshold: number
  limit_usd: number
  spent_usd: number
}

/**
 * POST a budget alert as JSON to the configured webhook (`webhooks.budget_alert_url`). Fire and forget with
 * a short timeout and one retry: a slow receiver never holds a request.
 *
 * @example
 * await postBudgetAlert('https://hooks.example.com/budget', alert)
 */
export async function postBudgetAlert(url: string, alert: BudgetAlert, timeoutMs = 5000): Promise<void> {
  let last: unknown
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'user-agent': 'sluice-budget-alert' },
        body: JSON.stringify({ type: 'budget_alert', ...alert }),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs
      })
      await res.body.dump()
      if (res.statusCode < 300) return
      last = new Error(`webhook answered ${res.statusCode}`)
      if (res.statusCode < 500) break
    } catch (err) {
      last = err
    }
  }
  throw last
}
