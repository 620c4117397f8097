import { newId } from '../ids.js'
import type { RequestContext } from '../context.js'
import type { LedgerEntry } from './types.js'

const qualifiedNames = new WeakMap<object, string>()

/**
 * The ledger's `model` for a target, `provider/model`: one string per configured target (targets are made once
 * per config), not a new concatenation per entry, which a kept entry would hold as a tree of string pieces.
 *
 * @example
 * ledgerModel({ provider: { name: 'openai' }, model: { model: 'gpt-4o-mini' } }) // 'openai/gpt-4o-mini'
 */
export function ledgerModel(target: { provider: { name: string }; model: { model: string } }): string {
  let name = qualifiedNames.get(target)
  if (name === undefined) {
    name = `${target.provider.name}/${target.model.model}`
    qualifiedNames.set(target, name)
  }
  return name
}

/** The fields every entry takes from its request rather than from what happened. */
type RequestFields = 'id' | 'request_id' | 'ts' | 'team' | 'key_id' | 'user' | 'session' | 'agent' | 'tags' | 'alias' | 'surface'

/**
 * A ledger entry for one thing that happened in a request (a provider attempt, a cache hit): a fresh id, the time
 * now, and the request's attribution (team, key, user, session, agent, tags, alias, surface) from `ctx`.
 *
 * @example
 * record(ledgerEntryFor(ctx, { model: 'cache', provider: 'cache', stream: ctx.stream, status: 'cache_hit', tokens, estimated: false, cost_usd: 0, latency_ms, attempt: 0 }))
 */
export function ledgerEntryFor(ctx: RequestContext, fields: Omit<LedgerEntry, RequestFields>): LedgerEntry {
  // fields in the order entries have always had: the stored JSON and the NDJSON export keep their shape. The
  // request's fields first, model and provider in their places; Object.assign then writes those two again where
  // they already are and appends the rest in the caller's order (what `{ model, provider, ...rest }` and a spread
  // did, without building the rest object: that pair was most of this function's time on a cache hit)
  return Object.assign(
    {
      id: newId(),
      request_id: ctx.id,
      ts: Date.now(),
      team: ctx.principal.team,
      key_id: ctx.principal.keyId,
      user: ctx.principal.user,
      session: ctx.session,
      agent: ctx.agent,
      tags: ctx.tags.length ? ctx.tags : undefined,
      alias: ctx.alias,
      model: fields.model,
      provider: fields.provider,
      surface: ctx.surface
    },
    fields
  )
}
