import { hash } from 'node:crypto'
import type { Store } from '../store/types.js'
import type { ChatMessage, ToolCall } from '../types.js'
import type { ReasoningPolicy } from './schema.js'

/** A reasoning-layer rule that stopped the session, with a message the agent can show. */
export interface SessionViolation {
  rule: string
  message: string
}

interface LoopState {
  /** Hash of the last tool-call set, and how many times in a row it came. */
  tool?: string
  toolRun: number
  msg?: string
  msgRun: number
}

const digest = (s: string) => hash('sha256', s, 'base64url').slice(0, 22)

/** Canonical signature of a set of tool calls: names and arguments, key order and whitespace ignored. */
export function toolCallSignature(calls: Pick<ToolCall, 'function'>[]): string {
  const parts = calls.map((c) => {
    let args: unknown = c.function.arguments
    try {
      args = sortKeys(JSON.parse(c.function.arguments || '{}'))
    } catch {
      // not JSON: compare the raw text
    }
    return `${c.function.name}:${JSON.stringify(args)}`
  })
  return digest(parts.sort().join('\n'))
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys)
  if (v && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, x]) => [k, sortKeys(x)])
    )
  }
  return v
}

/**
 * Per-session state of the reasoning layer, kept in the Store so every gateway instance sees the same
 * counts. Keys are scoped by team (session ids come from clients). Each count expires `session_ttl_s` after its
 * last update, and every request it counts pushes that out, a refused one included. So an agent that keeps
 * working keeps its counts however long it runs, one at a limit stays refused while it keeps asking, and an idle
 * session is forgotten. Holds counts and hashes only, never message text.
 *
 * @example
 * const s = createSessionGuard(store, policy, 'research', 'sess-42')
 * const v = await s.admit(request.messages) // { rule: 'session.max_requests', ... } or undefined
 */
export function createSessionGuard(store: Store, policy: ReasoningPolicy, team: string, session: string) {
  const base = `guard:session:${team}:${session}:`
  const ttlMs = policy.session_ttl_s * 1000

  return {
    /** Counts the request and checks the session's request, tool-round and cost limits. */
    async admit(messages: ChatMessage[]): Promise<SessionViolation | undefined> {
      if (policy.max_cost_usd !== undefined) {
        const spent = Number((await store.get(base + 'cost')) ?? 0)
        if (spent >= policy.max_cost_usd) {
          // a session refused for its cost stays refused while it keeps asking
          await store.incrBy(base + 'cost', 0, ttlMs, true)
          return {
            rule: 'session.max_cost',
            message: `this session has spent $${spent.toFixed(4)}, its limit is $${policy.max_cost_usd}; start a new session`
          }
        }
      }
      if (policy.max_requests !== undefined) {
        const n = await store.incrBy(base + 'requests', 1, ttlMs, true)
        if (n > policy.max_requests) {
          return { rule: 'session.max_requests', message: `this session reached its limit of ${policy.max_requests} requests` }
        }
      }
      // A request that brings tool results back starts a new round of the agent loop.
      if (policy.max_tool_rounds !== undefined && messages.at(-1)?.role === 'tool') {
        const n = await store.incrBy(base + 'tool_rounds', 1, ttlMs, true)
        if (n > policy.max_tool_rounds) {
          return { rule: 'session.max_tool_rounds', message: `this session reached its limit of ${policy.max_tool_rounds} tool-call rounds` }
        }
      }
      return undefined
    },

    /** Adds the final cost of a request to the session. */
    async addCost(usd: number): Promise<void> {
      if (policy.max_cost_usd === undefined || !(usd > 0)) return
      await store.incrBy(base + 'cost', usd, ttlMs, true)
    },

    /**
     * Records one assistant turn and detects loops: the same tool calls, or the same text, that many
     * times in a row. Read-modify-write of one key: two concurrent turns of one session may each miss
     * the other's update, which only delays detection by a turn.
     */
    async observeTurn(turn: { toolCalls: Pick<ToolCall, 'function'>[]; content: string }): Promise<SessionViolation | undefined> {
      const loop = policy.loop
      if (!loop) return undefined
      const raw = await store.get(base + 'loop')
      const state: LoopState = raw ? (JSON.parse(raw) as LoopState) : { toolRun: 0, msgRun: 0 }
      let violation: SessionViolation | undefined
      if (turn.toolCalls.length > 0) {
        const sig = toolCallSignature(turn.toolCalls)
        state.toolRun = state.tool === sig ? state.toolRun + 1 : 1
        state.tool = sig
        if (state.toolRun >= loop.max_repeats) {
          const names = [...new Set(turn.toolCalls.map((c) => c.function.name))].join(', ')
          violation = {
            rule: 'loop.repeated_tool_call',
            message: `loop detected: the model called ${names} with the same arguments ${state.toolRun} times in a row; change the approach or ask the user`
          }
        }
      } else {
        state.tool = undefined
        state.toolRun = 0
      }
      const text = turn.content.trim()
      if (text.length > 0) {
        const sig = digest(text)
        state.msgRun = state.msg === sig ? state.msgRun + 1 : 1
        state.msg = sig
        if (!violation && state.msgRun >= loop.max_repeated_messages) {
          violation = {
            rule: 'loop.repeated_message',
            message: `loop detected: the model gave the same answer ${state.msgRun} times in a row`
          }
        }
      } else {
        state.msg = undefined
        state.msgRun = 0
      }
      await store.set(base + 'loop', JSON.stringify(state), ttlMs)
      return violation
    }
  }
}

export type SessionGuard = ReturnType<typeof createSessionGuard>
