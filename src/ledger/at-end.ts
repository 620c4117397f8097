import type { RequestContext } from '../context.js'
import type { Ledger } from './index.js'
import type { LedgerEntry } from './types.js'

/**
 * Record a request's ledger entries when the request ends rather than when each attempt settles, so they carry
 * what happened after the provider answered: the output guard masks a JSON answer (or a stream's tail) after
 * the call settled, and its `rule:action`s belong in the entry. Create it while the request runs (before the
 * pipeline's end callbacks); an entry recorded after they ran (the client left first, so nothing more can
 * happen) is written at once. The end callback runs before the gateway releases the request, so a shutdown
 * flush still finds the entries.
 *
 * @example
 * const record = ledgerAtEnd(ctx, ledger)
 * record(entry) // written with ctx's guardrail actions once the request has ended
 */
export function ledgerAtEnd(ctx: RequestContext, ledger: Pick<Ledger, 'record'>): (entry: LedgerEntry) => void {
  let holder = holders.get(ctx)
  if (!holder) {
    // one end callback per request, so entries keep their order (tier 0 before tier 1) whatever the callback order
    const h: Holder = { ended: false, held: [] }
    holders.set(ctx, (holder = h))
    ctx.onDone.push(() => {
      h.ended = true
      for (const [entry, to] of h.held.splice(0)) write(ctx, to, entry)
    })
  }
  const h = holder
  return (entry) => (h.ended ? write(ctx, ledger, entry) : void h.held.push([entry, ledger]))
}

interface Holder {
  ended: boolean
  held: [LedgerEntry, Pick<Ledger, 'record'>][]
}

const holders = new WeakMap<RequestContext, Holder>()

function write(ctx: RequestContext, ledger: Pick<Ledger, 'record'>, entry: LedgerEntry): void {
  const actions = ctx.guardrailActions
  ledger.record(actions?.length ? { ...entry, guardrails: [...actions] } : entry)
}
