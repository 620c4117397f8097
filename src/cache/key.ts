import { hash } from 'node:crypto'
import type { GatewayConfig } from '../config/load.js'
import type { TeamPolicy } from '../config/schema.js'
import type { RequestContext } from '../context.js'
import type { RouteNode } from '../routing/schema.js'
import type { ChatMessage, ChatRequest } from '../types.js'
import type { CachePolicy } from './schema.js'

/**
 * Request fields that never change the answer. Everything else is part of the key, unknown fields
 * included: a field Sluice does not know may change what the upstream says, so it must split the cache.
 */
const NOT_ANSWER_CHANGING = new Set([
  'model', // replaced by the public alias
  'stream',
  'stream_options',
  'user',
  'metadata',
  'store',
  'service_tier',
  'prompt_cache_key',
  'safety_identifier'
])

/**
 * The tenant a cache entry belongs to: the policy's `cache.scope` when set, the team otherwise. The two
 * are kept in separate namespaces so a policy scope named like a team never reads that team's entries.
 *
 * @example
 * tenantScope('research', undefined) // 'team:research'
 * tenantScope('research', 'shared-docs') // 'scope:shared-docs'
 */
export function tenantScope(team: string, scope: string | undefined): string {
  return scope ? `scope:${scope}` : `team:${team}`
}

/**
 * JSON with object keys sorted at every level, so equal requests hash equally whatever the key order.
 * Byte for byte what `JSON.stringify` with a key-sorting replacer writes, built in one walk: the replacer form
 * copied every object into a sorted one and called back into JS for every value (the largest part of an
 * exact-cache hit's own work after the response write; README, Performance).
 *
 * @example
 * canonicalJson({ b: 1, a: [true, { d: null, c: 'x' }] }) // '{"a":[true,{"c":"x","d":null}],"b":1}'
 */
export function canonicalJson(value: unknown): string {
  return writeJson(value, '') as string
}

/** One value as `JSON.stringify` writes it; undefined where it leaves the value out (undefined, functions, symbols). */
function writeJson(value: unknown, key: string | number): string | undefined {
  let v = value
  if (v !== null && typeof v === 'object' && typeof (v as { toJSON?: unknown }).toJSON === 'function') v = (v as { toJSON(k: string): unknown }).toJSON(String(key))
  switch (typeof v) {
    case 'string':
      return quoted(v)
    case 'number':
      // String() and JSON.stringify write finite numbers alike (-0 as 0); JSON has no NaN or Infinity
      return Number.isFinite(v) ? String(v) : 'null'
    case 'boolean':
      return v ? 'true' : 'false'
    case 'object': {
      if (v === null) return 'null'
      if (Array.isArray(v)) {
        let out = '['
        for (let i = 0; i < v.length; i++) out += (i > 0 ? ',' : '') + (writeJson(v[i], i) ?? 'null')
        return out + ']'
      }
      // a "__proto__" field parsed from JSON is an own property: Object.keys lists it and it counts in the key
      const record = v as Record<string, unknown>
      const keys = sortedKeys(record)
      let out = '{'
      let first = true
      for (const k of keys) {
        const item = writeJson(record[k], k)
        if (item === undefined) continue
        out += (first ? '' : ',') + quoted(k) + ':' + item
        first = false
      }
      return out + '}'
    }
    case 'bigint':
      // JSON.stringify's own TypeError
      return JSON.stringify(v)
    default:
      return undefined
  }
}

/**
 * Characters `JSON.stringify` escapes in a string: the quote, the backslash, controls and lone surrogates (any
 * surrogate sends the string to `JSON.stringify`, which tells pairs from lone ones).
 */
const ESCAPED = /["\\\u0000-\u001f\ud800-\udfff]/

/**
 * A string as `JSON.stringify` writes it. Most keys and prompts need no escape: quoting them joins three
 * strings (V8 keeps the join as a reference, flattened once when the key is hashed) instead of copying the text.
 */
function quoted(s: string): string {
  return ESCAPED.test(s) ? JSON.stringify(s) : '"' + s + '"'
}

/** Longer key lists are left to `Array.prototype.sort`; an insertion sort's comparisons grow with the square. */
const INSERTION_SORT_MAX = 16

/**
 * An object's keys in the order the replacer form wrote them: it copied them, sorted, into a new object, whose
 * own keys then enumerate array indices first ("2" before "10", numerically) and the others in sorted order.
 * Object.keys already lists array indices first, in that order; only the rest need sorting. Request objects have
 * a handful of keys: they are sorted in place, by code units as `sort()` compares them, since `sort()` copies the
 * list into a work array on every call (about a kilobyte of garbage per object).
 */
function sortedKeys(record: Record<string, unknown>): string[] {
  const keys = Object.keys(record)
  let from = 0
  while (from < keys.length && isArrayIndex(keys[from]!)) from++
  if (keys.length - from > INSERTION_SORT_MAX) return from === 0 ? keys.sort() : keys.slice(0, from).concat(keys.slice(from).sort())
  for (let i = from + 1; i < keys.length; i++) {
    const k = keys[i]!
    let j = i - 1
    for (; j >= from && keys[j]! > k; j--) keys[j + 1] = keys[j]!
    keys[j + 1] = k
  }
  return keys
}

/** A canonical array index ("0", "17"; not "01" or "4294967295"), which objects enumerate before other keys. */
function isArrayIndex(k: string): boolean {
  const c = k.charCodeAt(0)
  if (!(c >= 0x30 && c <= 0x39)) return false
  return /^(?:0|[1-9]\d*)$/.test(k) && Number(k) < 4294967295
}

function sha256(text: string): string {
  // one-shot: no Hash object per call (about half the time of createHash().update().digest())
  return hash('sha256', text, 'hex')
}

/** The request without the fields that do not change the answer. */
function answerFields(req: ChatRequest): Record<string, unknown> {
  const out: Record<string, unknown> = Object.create(null)
  for (const [k, v] of Object.entries(req)) if (!NOT_ANSWER_CHANGING.has(k) && v !== undefined) out[k] = v
  return out
}

/**
 * Canonical request texts up to this many characters key an in-process cache as they are (`exactCacheKey`):
 * long enough for a typical chat request, short enough that the memory store's byte bound still holds many entries.
 */
export const TEXT_KEY_MAX_CHARS = 2048

/**
 * Store key of the exact cache: a hash of the tenant scope, the public model alias, what the alias resolves
 * to (`routeFingerprint`) and every answer-changing request field. Streaming and non-streaming requests
 * share entries.
 *
 * With `inProcess` (the memory store: its keys are only compared in a Map, never sent to or kept by a server), a
 * request whose canonical text is at most `TEXT_KEY_MAX_CHARS` long is keyed by that text itself: string
 * equality is as collision-proof as SHA-256, and the hash was ~4 µs of a cache hit (OpenSSL's state is cold
 * between requests; 0.45 µs in a loop). Longer requests are hashed, so the byte bound keeps holding many entries.
 *
 * @example
 * exactCacheKey({ tenant: 'team:research', alias: 'fast', request }) // 'cache:x:3f9a…'
 * exactCacheKey({ tenant: 'team:research', alias: 'fast', request, inProcess: true }) // 'cache:t:{"alias":"fast",…'
 */
export function exactCacheKey(input: { tenant: string; alias: string; route?: string; request: ChatRequest; inProcess?: boolean }): string {
  const text = canonicalJson({ v: 1, tenant: input.tenant, alias: input.alias, route: input.route, req: answerFields(input.request) })
  return keyOf(text, input.inProcess, 'cache:t:', 'cache:x:')
}

/**
 * `text` itself behind `textPrefix` where the key stays in this process and the text is at most
 * `TEXT_KEY_MAX_CHARS` long, else its SHA-256 behind `hashPrefix`. The prefixes keep the two forms apart: a text
 * key never equals a hash key.
 */
function keyOf(text: string, inProcess: boolean | undefined, textPrefix: string, hashPrefix: string): string {
  return inProcess && text.length <= TEXT_KEY_MAX_CHARS ? textPrefix + text : hashPrefix + sha256(text)
}

/**
 * A hash of what a public alias resolves to for a team: its route (the policy's `routing.routes` entry, or
 * the configured model of that name) and, for every model the route can reach, the model, its provider's
 * kind and endpoint (`base_url`, or `model_path` for llama). Part of every cache key and semantic scope, so
 * a config reload that points an alias somewhere else stops serving the old target's answers at once.
 * Prices, keys, timeouts, retries and breakers are left out: they do not change an answer. Undefined for an
 * alias that resolves to nothing (the request fails later with a 404).
 *
 * @example
 * routeFingerprint(config, policy, 'smart') // 'r:9c1e…'
 */
export function routeFingerprint(config: Pick<GatewayConfig, 'models' | 'providers'>, policy: TeamPolicy, alias: string): string | undefined {
  const node: RouteNode | undefined = Object.hasOwn(policy.routing?.routes ?? {}, alias) ? policy.routing!.routes[alias] : config.models[alias] ? alias : undefined
  if (node === undefined) return undefined
  const targets: Record<string, unknown> = {}
  for (const name of targetsOf(node)) {
    const model = config.models[name]
    const provider = model ? config.providers[model.provider] : undefined
    targets[name] = model && {
      model: model.model,
      provider: model.provider,
      kind: provider?.kind,
      endpoint: provider ? ('base_url' in provider ? provider.base_url : provider.model_path) : undefined
    }
  }
  return 'r:' + sha256(canonicalJson({ node, targets })).slice(0, 32)
}

/** Every model name a route can call, judges included. */
function targetsOf(node: RouteNode, out = new Set<string>()): Set<string> {
  if (typeof node === 'string') out.add(node)
  else if ('single' in node) out.add(node.single)
  else if ('fallback' in node) node.fallback.forEach((n) => targetsOf(n, out))
  else if ('loadbalance' in node) node.loadbalance.forEach((m) => targetsOf(m.route, out))
  else if ('conditional' in node) {
    node.conditional.forEach((r) => targetsOf(r.route, out))
    if (node.default !== undefined) targetsOf(node.default, out)
  } else {
    for (const tier of node.cascade) {
      targetsOf(tier.route, out)
      if (tier.checks?.judge) out.add(tier.checks.judge.target)
    }
  }
  return out
}

export interface SemanticQuery {
  /** The tenant, alias and its route, conversation before the last user turn, system prompt, tools and parameters, hashed. */
  scope: string
  /** The last user turn: what gets embedded. */
  text: string
}

/**
 * Splits a request for the semantic cache: the last user turn is embedded, everything else (earlier turns,
 * system prompt, tools, sampling parameters) is hashed into the scope, so a hit never answers another
 * context. Undefined when the request does not end with a plain-text user turn (tool results, images).
 * With `inProcess` (the embedded index: scopes are only compared in its Map), a scope whose canonical text is at
 * most `TEXT_KEY_MAX_CHARS` long is that text itself, as `exactCacheKey` does; a shared index (Qdrant) gets the hash.
 *
 * @example
 * semanticQuery({ tenant: 'team:a', alias: 'fast', request: { model: 'fast', messages: [{ role: 'user', content: 'hi' }] } })
 * // { scope: 'sem:…', text: 'hi' }
 */
export function semanticQuery(input: { tenant: string; alias: string; route?: string; request: ChatRequest; inProcess?: boolean }): SemanticQuery | undefined {
  const messages = input.request.messages
  const last = messages.at(-1)
  if (!last || last.role !== 'user') return undefined
  const text = plainText(last)
  if (text === undefined || text.trim() === '') return undefined
  const { messages: _omit, ...rest } = answerFields(input.request)
  const scope = canonicalJson({ v: 1, tenant: input.tenant, alias: input.alias, route: input.route, req: rest, context: messages.slice(0, -1), last: withoutContent(last) })
  return { scope: keyOf(scope, input.inProcess, 'semt:', 'sem:'), text }
}

/** Text of a message made only of text (string or text parts); undefined when it carries anything else. */
function plainText(m: ChatMessage): string | undefined {
  if (typeof m.content === 'string') return m.content
  if (!Array.isArray(m.content)) return undefined
  let out = ''
  for (const part of m.content) {
    if (part.type !== 'text' || typeof part.text !== 'string') return undefined
    out += (out ? '\n' : '') + part.text
  }
  return out
}

/** The last turn's other fields (name, ...) still belong to the context. */
function withoutContent(m: ChatMessage): Record<string, unknown> {
  const { content: _c, ...rest } = m
  return rest
}

/** Why this request must neither read nor write the cache, or what the client opted out of. */
export interface CacheIntent {
  read: boolean
  write: boolean
  /** Set when neither read nor write is allowed: 'disabled', 'policy', 'client'. */
  reason?: string
}

/**
 * What the policy and the client's headers allow for this request.
 * `Cache-Control: no-cache` skips reading, `no-store` skips writing, `x-sluice-cache: off` (or `bypass`)
 * skips both; the policy's `when: temperature_zero` caches only requests with `temperature: 0`.
 *
 * @example
 * cacheIntent(ctx, policy) // { read: true, write: false } with Cache-Control: no-store
 */
export function cacheIntent(ctx: Pick<RequestContext, 'headers' | 'request'>, policy: CachePolicy): CacheIntent {
  if (!policy.enabled || (!policy.exact.enabled && !policy.semantic.enabled)) {
    return { read: false, write: false, reason: 'disabled' }
  }
  if (policy.when === 'temperature_zero' && ctx.request.temperature !== 0) {
    return { read: false, write: false, reason: 'policy' }
  }
  const sluice = ctx.headers['x-sluice-cache']?.trim().toLowerCase()
  if (sluice === 'off' || sluice === 'bypass' || sluice === 'false' || sluice === '0') {
    return { read: false, write: false, reason: 'client' }
  }
  const cacheControl = ctx.headers['cache-control']
  // most requests send none: no string to lower-case, split and scan
  if (cacheControl === undefined) return { read: true, write: true }
  const directives = cacheControl.toLowerCase().split(',').map((d) => d.trim())
  const read = !directives.includes('no-cache')
  const write = !directives.includes('no-store')
  return read || write ? { read, write } : { read, write, reason: 'client' }
}
