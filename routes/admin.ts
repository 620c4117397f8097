import { Hono } from 'hono'
import type { Context } from 'hono'
import { stream } from 'hono/streaming'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { csvHeader, csvLine, ledgerPages, type ExportFormat } from '../src/admin/export.js'
import { checkKeyId, checkName } from '../src/admin/ids.js'
import { configKeyViews, createKeyStore } from '../src/admin/keys.js'
import { summarizeOverview } from '../src/admin/overview.js'
import { ConfigError, loadConfig, loadPolicyFrom } from '../src/config/load.js'
import type { Price } from '../src/config/schema.js'
import { GatewayError } from '../src/errors.js'
import type { Gateway } from '../src/gateway.js'
import { parseSince, summarizeSpend, type GroupBy } from '../src/ledger/spend.js'
import type { LedgerFilter } from '../src/ledger/types.js'

const GROUPS: GroupBy[] = ['team', 'key', 'user', 'session', 'agent', 'tag', 'model', 'alias', 'day', 'provider']
const DAY = 86_400_000

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

/** Writes (keys, reload) take the admin key: a team key gets 403, a bad key 401. */
async function requireAdmin(gateway: Gateway, c: Context, what: string): Promise<void> {
  const headers = c.req.header()
  if (gateway.isAdmin(headers)) return
  await gateway.identify(headers)
  throw new GatewayError(403, `Only the admin key may ${what}.`, { code: 'forbidden' })
}

/** The ledger filter of a query string, confined to the caller's team. */
function ledgerFilter(c: Context, confined: string | undefined, what: string): LedgerFilter {
  const q = c.req.query()
  if (confined && q.team && q.team !== confined) throw new GatewayError(403, `This key may only read its own team's ${what}.`, { code: 'forbidden' })
  const since = parseSince(q.since)
  const until = parseSince(q.until)
  if (q.since && since === undefined) throw new GatewayError(400, 'since must be like 7d, 24h, 30m, an ISO date or epoch milliseconds.', { code: 'invalid_request', param: 'since' })
  if (q.until && until === undefined) throw new GatewayError(400, 'until must be like 7d, 24h, 30m, an ISO date or epoch milliseconds.', { code: 'invalid_request', param: 'until' })
  return {
    team: confined ?? q.team,
    key_id: q.key,
    user: q.user,
    session: q.session,
    agent: q.agent,
    tag: q.tag,
    model: q.model,
    alias: q.alias,
    since,
    until
  }
}

const createKeyBody = z.strictObject({ team: z.string(), user: z.string().optional(), name: z.string().max(200).optional() })

/**
 * The admin API. The admin key reads and writes everything; a team key reads only its own team.
 * - spend: `GET /spend` (filters, `group_by`), `GET /sessions/:id`, `GET /overview` (the dashboard's
 *   aggregates), `GET /export?format=ndjson|csv` (streamed)
 * - keys: `GET /keys`, `POST /keys` (the key is in the answer once), `POST /keys/:id/revoke`, `POST /keys/:id/rotate`
 * - teams: `GET /teams`, `GET /teams/:team`, `POST /policies/validate` (YAML or JSON body), `POST /reload`
 * - `GET /guardrails` (recent actions), `GET /whoami`
 *
 * @example
 * app.route('/admin', adminRoutes(gateway))
 */
export function adminRoutes(gateway: Gateway) {
  const app = new Hono()
  const keys = createKeyStore(gateway.store)

  const knownTeam = (team: string) => {
    checkName(team, 'team')
    if (!gateway.config.policies[team]) throw new GatewayError(404, `Team "${team}" does not exist.`, { code: 'team_not_found', param: 'team' })
    return team
  }

  app.get('/whoami', async (c) => {
    const confined = await adminScope(gateway, c)
    return c.json(confined ? { admin: false, team: confined } : { admin: true, teams: Object.keys(gateway.config.policies) })
  })

  app.get('/spend', async (c) => {
    const confined = await adminScope(gateway, c)
    const groupBy = c.req.query('group_by') as GroupBy | undefined
    if (groupBy && !GROUPS.includes(groupBy)) throw new GatewayError(400, `group_by must be one of ${GROUPS.join(', ')}.`, { param: 'group_by', code: 'invalid_request' })
    const filter = ledgerFilter(c, confined, 'spend')
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

  app.get('/overview', async (c) => {
    const confined = await adminScope(gateway, c)
    const filter = ledgerFilter(c, confined, 'spend')
    const until = filter.until ?? Date.now()
    const since = filter.since ?? until - DAY
    const entries = await gateway.store.queryLedger({ ...filter, since, until })
    const prices = new Map<string, Price>()
    for (const m of Object.values(gateway.config.models)) prices.set(`${m.provider}/${m.model}`, m.price)
    return c.json(summarizeOverview(entries, { since, until, priceOf: (e) => prices.get(e.model) }))
  })

  app.get('/export', async (c) => {
    const confined = await adminScope(gateway, c)
    const format = (c.req.query('format') ?? 'ndjson') as ExportFormat
    if (format !== 'ndjson' && format !== 'csv') throw new GatewayError(400, 'format must be ndjson or csv.', { code: 'invalid_request', param: 'format' })
    const filter = ledgerFilter(c, confined, 'ledger')
    const until = filter.until ?? Date.now()
    const since = filter.since ?? until - 30 * DAY
    const name = `sluice-ledger-${new Date(since).toISOString().slice(0, 10)}-${new Date(until).toISOString().slice(0, 10)}.${format}`
    c.header('content-type', format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson')
    c.header('content-disposition', `attachment; filename="${name}"`)
    return stream(c, async (out) => {
      if (format === 'csv') await out.write(csvHeader())
      for await (const page of ledgerPages(gateway.store, filter, since, until)) {
        if (out.aborted) return
        await out.write(page.map((e) => (format === 'csv' ? csvLine(e) : JSON.stringify(e) + '\n')).join(''))
      }
    })
  })

  app.get('/keys', async (c) => {
    const confined = await adminScope(gateway, c)
    const asked = c.req.query('team')
    if (confined && asked && asked !== confined) throw new GatewayError(403, "This key may only read its own team's keys.", { code: 'forbidden' })
    const teams = confined ? [confined] : asked ? [knownTeam(asked)] : Object.keys(gateway.config.policies)
    const data = configKeyViews(gateway.config.keys).filter((k) => teams.includes(k.team))
    for (const team of teams) data.push(...(await keys.list(team)))
    return c.json({ object: 'list', data })
  })

  app.post('/keys', async (c) => {
    await requireAdmin(gateway, c, 'create keys')
    const parsed = createKeyBody.safeParse(await c.req.json().catch(() => undefined))
    if (!parsed.success) throw new GatewayError(400, 'Body must be {"team": string, "user"?: string, "name"?: string}.', { code: 'invalid_request' })
    const team = knownTeam(parsed.data.team)
    const user = parsed.data.user === undefined ? undefined : checkName(parsed.data.user, 'user')
    const { key, view } = await keys.create({ team, user, name: parsed.data.name })
    return c.json({ ...view, key, note: 'Store this key now: Sluice keeps only its SHA-256 and cannot show it again.' }, 201)
  })

  app.post('/keys/:id/revoke', async (c) => {
    await requireAdmin(gateway, c, 'revoke keys')
    return c.json(await keys.revoke(checkKeyId(c.req.param('id'))))
  })

  app.post('/keys/:id/rotate', async (c) => {
    await requireAdmin(gateway, c, 'rotate keys')
    const { key, view, revoked } = await keys.rotate(checkKeyId(c.req.param('id')))
    return c.json({ ...view, key, revoked, note: 'Store this key now: Sluice keeps only its SHA-256 and cannot show it again.' }, 201)
  })

  app.get('/teams', async (c) => {
    const confined = await adminScope(gateway, c)
    const teams = confined ? [confined] : Object.keys(gateway.config.policies)
    return c.json({ object: 'list', data: teams.map((team) => teamView(gateway, team)) })
  })

  app.get('/teams/:team', async (c) => {
    const confined = await adminScope(gateway, c)
    const team = checkName(c.req.param('team'), 'team')
    if (confined && team !== confined) throw new GatewayError(403, "This key may only read its own team's policy.", { code: 'forbidden' })
    knownTeam(team)
    return c.json(teamView(gateway, team))
  })

  app.post('/policies/validate', async (c) => {
    await adminScope(gateway, c)
    const text = await c.req.text()
    let doc: unknown
    try {
      doc = parseYaml(text) // JSON is YAML
    } catch (err) {
      return c.json({ valid: false, ...invalidPolicy(`not valid YAML or JSON: ${(err as Error).message.split('\n')[0]}`) }, 422)
    }
    try {
      const policy = loadPolicyFrom('(request body)', doc)
      const unknown = (policy.models ?? []).filter((m) => !gateway.config.models[m])
      const warnings = unknown.map((m) => `models: "${m}" is not a model of this gateway`)
      return c.json({ valid: true, policy, warnings })
    } catch (err) {
      if (err instanceof ConfigError) return c.json({ valid: false, ...invalidPolicy(err.message) }, 422)
      throw err
    }
  })

  app.post('/reload', async (c) => {
    await requireAdmin(gateway, c, 'reload the config')
    try {
      gateway.reload(await loadConfig(gateway.config.file))
      gateway.reloadFailed(undefined)
    } catch (err) {
      const message = err instanceof ConfigError ? err.message : `reload failed: ${(err as Error).message}`
      gateway.reloadFailed(message)
      const error = new GatewayError(422, message, { code: 'invalid_config' })
      return c.json({ reloaded: false, ...error.toJSON(), note: 'The running config is unchanged.' }, 422)
    }
    return c.json({ reloaded: true, teams: Object.keys(gateway.config.policies), models: Object.keys(gateway.config.models) })
  })

  app.get('/guardrails', async (c) => {
    const confined = await adminScope(gateway, c)
    const limit = Math.min(2000, Math.max(1, Number(c.req.query('limit') ?? 200) || 200))
    const events = gateway.runtime.guardrailEvents.recent().filter((e) => !confined || e.team === confined)
    const counts = new Map<string, { layer: string; rule: string; action: string; events: number; matches: number }>()
    for (const e of events) {
      const k = `${e.layer}\u0000${e.rule}\u0000${e.action}`
      const row = counts.get(k) ?? { layer: e.layer, rule: e.rule, action: e.action, events: 0, matches: 0 }
      row.events++
      row.matches += e.count
      counts.set(k, row)
    }
    return c.json({ by_rule: [...counts.values()].sort((a, b) => b.events - a.events), recent: events.slice(-limit).reverse() })
  })

  return app
}

function teamView(gateway: Gateway, team: string) {
  const config = gateway.config
  return { team, policy_file: config.teams[team]?.policy, policy: config.policies[team] }
}

/** A policy that does not validate: OpenAI's error shape, the message naming the path and the fix. */
function invalidPolicy(message: string) {
  return new GatewayError(422, message, { code: 'invalid_policy' }).toJSON()
}
