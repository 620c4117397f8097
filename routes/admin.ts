import { Hono } from 'hono'
import type { Context } from 'hono'
import { GatewayError } from '../src/errors.js'
import type { Gateway } from '../src/gateway.js'
import { parseSince, summarizeSpend, type GroupBy } from '../src/ledger/spend.js'
import type { LedgerFilter } from '../src/ledger/types.js'

const GROUPS: GroupBy[] = ['team', 'key', 'user', 'session', 'agent', 'tag', 'model', 'alias', 'day', 'provider']

/**
 * Who may read what: the admin key reads everything; a team's own key reads only its team's data.
 * Returns the team a caller is confined to, or undefined for the admin.
 */
export async function adminScope(gateway: Gateway, c: Context): Promise<string | undefined> {
  const headers = c.req.header()
  if (gateway.isAdmin(headers)) return undefined
  const principal = await gateway.identify(headers)
  return principal.team
}

/**
 * The admin API: spend queries and session attribution.
 *
 * @example
 * app.route('/admin', adminRoutes(gateway))
 */
export function adminRoutes(gateway: Gateway) {
  const app = new Hono()

  app.get('/spend', async (c) => {
    const confined = await adminScope(gateway, c)
    const q = c.req.query()
    const groupBy = q.group_by as GroupBy | undefined
    if (groupBy && !GROUPS.includes(groupBy)) throw new GatewayError(400, `group_by must be one of ${GROUPS.join(', ')}.`, { param: 'group_by', code: 'invalid_request' })
    if (confined && q.team && q.team !== confined) throw new GatewayError(403, 'This key may only read its own team\'s spend.', { code: 'forbidden' })
    const filter: LedgerFilter = {
      team: confined ?? q.team,
      key_id: q.key,
      user: q.user,
      session: q.session,
      agent: q.agent,
      tag: q.tag,
      model: q.model,
      alias: q.alias,
      since: parseSince(q.since),
      until: parseSince(q.until)
    }
    const entries = await gateway.store.queryLedger(filter)
    return c.json({ filter: Object.fromEntries(Object.entries(filter).filter(([, v]) => v !== undefined)), ...summarizeSpend(entries, groupBy) })
  })

  app.get('/sessions/:id', async (c) => {
    const confined = await adminScope(gateway, c)
    const session = c.req.param('id')
    const entries = await gateway.store.queryLedger({ session, team: confined ?? c.req.query('team') })
    if (entries.length === 0) throw new GatewayError(404, `No requests recorded for session "${session}".`, { code: 'session_not_found' })
    const summary = summarizeSpend(entries, 'model')
    return c.json({ session, team: entries[0]!.team, ...summary, entries: entries.slice(-500) })
  })

  return app
}
