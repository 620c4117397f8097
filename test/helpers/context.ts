import { createContext } from '../../src/auth/context.js'
import { teamPolicySchema } from '../../src/config/schema.js'
import type { RequestContext } from '../../src/context.js'
import type { ChatRequest } from '../../src/types.js'

/**
 * A chat request's context for step-level tests: team `a`, key `k1`, no headers, a live signal; the policy (parsed
 * like a policy file) and the request are the parts tests vary.
 *
 * @example
 * const ctx = chatContext({ policy: { cache: {} }, request: { model: 'fast', messages: [{ role: 'user', content: 'hi' }] } })
 */
export function chatContext(opts: { policy?: unknown; request?: ChatRequest } = {}): RequestContext {
  return createContext({
    principal: { team: 'a', keyId: 'k1' },
    policy: teamPolicySchema.parse(opts.policy ?? {}),
    headers: {},
    request: opts.request ?? { model: 'fast', messages: [{ role: 'user', content: 'hi' }] },
    surface: 'chat',
    signal: new AbortController().signal
  })
}
