import { Hono } from 'hono'
import { z } from 'zod'
import type { Budget } from '../src/budget/schema.js'
import { parseCounterKey, teamKeys, windowAt } from '../src/budget/index.js'
import { GatewayError } from '../src/errors.js'
import type { Gateway } from '../src/gateway.js'
import type { BudgetCounterState } from '../src/store/types.js'
import { adminScope } from './admin.js'

const resetSchema = z.strictObject({
  team: z.string().min(1),
  scope: z.enum(['team', 'key', 'user', 'session', 'tag', 'agent']),
  /** The scope's id (key id, user, session, tag, agent); all ids of the scope when absent. */
  id: z.string().min(1).optional(),
  window: z.enum(['day', 'week', 'month', 'total']).optional()
})

/**
 * Budget visibility and control, mounted under /admin:
 * - `GET /budgets[?team=&scope=]`: every budget counter of the current windows — limit, spent, reserved,
 *   remaining, window end. The admin key sees every team; a team key only its own.
 * - `POST /budgets/reset` `{ team, scope, id?, window? }`: zero the spend of the current window (admin key only;
 *   in-flight reservations stay).
 *
 * @example
 * app.route('/admin', budgetRoutes(gateway))
 */
export function budgetRoutes(gateway: Gateway, opts: { now?: () => number } = {}) {
  const app = new Hono()
  const clock = opts.now ?? Date.now

  app.get('/budgets', async (c) => {
    const confined = await adminScope(gateway, c)
    const q = c.req.query()
    if (confined && q.team && q.team !== confined) throw new GatewayError(403, "This key may only read its own team's budgets.", { code: 'forbidden' })
    const teams = confined ? [confined] : q.team ? [q.team] : Object.keys(gateway.config.policies)
    const now = clock()
    const budgets = []
    for (const team of teams) {
      const policy = gateway.config.policies[team]
      if (!policy) throw new GatewayError(404, `Team "${team}" does not exist.`, { code: 'team_not_found', param: 'team' })
      const lines = policy.budgets.filter((l) => !q.scope || l.scope === q.scope)
      if (lines.length === 0) continue
      const keys = teamKeys(team)
      const states = await gateway.store.readBudgets({ reservations: keys.reservations, index: keys.index, now })
      const byKey = new Map(states.map((s) => [s.key, s]))
      for (const line of lines) {
        const span = windowAt(line.window, now)
        const rows = new Map<string, BudgetCounterState | undefined>()
        // counters exist once a request has reserved; team lines and fixed tags are listed even before that
        if (line.scope === 'team') rows.set(team, undefined)
        if (line.scope === 'tag' && line.tag) rows.set(line.tag, undefined)
        for (const s of states) {
          const p = parseCounterKey(s.key)
          if (!p || p.scope !== line.scope || p.window !== line.window || p.label !== span.label) continue
          if (line.scope === 'tag' && line.tag && p.id !== line.tag) continue
          rows.set(p.id, s)
        }
        for (const [id, state] of rows) {
          const key = keys.counter(line.scope, id, line.window, span)
          const s = state ?? byKey.get(key)
          budgets.push(row(team, line, id, span, s))
        }
      }
    }
    return c.json({ object: 'list', now: new Date(now).toISOString(), data: budgets })
  })

  app.post('/budgets/reset', async (c) => {
    if (!gateway.isAdmin(c.req.header())) {
      await gateway.identify(c.req.header())
      throw new GatewayError(403, 'Only the admin key may reset budgets.', { code: 'forbidden' })
    }
    let body: z.infer<typeof resetSchema>
    try {
      body = resetSchema.parse(await c.req.json())
    } catch {
      throw new GatewayError(400, 'Body must be {"team": string, "scope": "team"|"key"|"user"|"session"|"tag"|"agent", "id"?: string, "window"?: "day"|"week"|"month"|"total"}.', { code: 'invalid_request' })
    }
    const policy = gateway.config.policies[body.team]
    if (!policy) throw new GatewayError(404, `Team "${body.team}" does not exist.`, { code: 'team_not_found', param: 'team' })
    const now = clock()
    const keys = teamKeys(body.team)
    const windows = new Set(policy.budgets.filter((l) => l.scope === body.scope && (!body.window || l.window === body.window)).map((l) => l.window))
    if (body.window) windows.add(body.window)
    let counters: string[]
    const id = body.scope === 'team' ? body.team : body.id
    if (id !== undefined) counters = [...windows].map((w) => keys.counter(body.scope, id, w, windowAt(w, now)))
    else {
      const states = await gateway.store.readBudgets({ reservations: keys.reservations, index: keys.index, now })
      counters = states
        .map((s) => ({ s, p: parseCounterKey(s.key) }))
        .filter(({ p }) => p && p.scope === body.scope && windows.has(p.window) && p.label === windowAt(p.window, now).label)
        .map(({ s }) => s.key)
    }
    await gateway.store.resetBudgets(counters)
    return c.json({ reset: counters.length, team: body.team, scope: body.scope, id: id ?? null })
  })

  return app
}

function row(team: string, line: Budget, id: string, span: ReturnType<typeof windowAt>, s: BudgetCounterState | undefined) {
  const spent = (s?.spentNanos ?? 0) / 1e9
  const reserved = (s?.reservedNanos ?? 0) / 1e9
  return {
    team,
    scope: line.scope,
    id,
    window: line.window,
    window_start: line.window === 'total' ? null : new Date(span.start).toISOString(),
    window_end: line.window === 'total' ? null : new Date(span.end).toISOString(),
    limit_usd: line.limit_usd,
    spent_usd: spent,
    reserved_usd: reserved,
    remaining_usd: Math.max(0, Math.round((line.limit_usd - spent - reserved) * 1e9) / 1e9),
    shadow: line.shadow,
    on_exceed: line.on_exceed,
    alert_at: line.alert_at ?? []
  }
}
