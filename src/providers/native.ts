import type { ChatRequest } from '../types.js'

/**
 * Native pass-through: a surface whose wire format is a provider's own (the Anthropic Messages API on
 * /v1/messages, the OpenAI Responses API on /v1/responses) keeps the client's original body so a target of that provider kind receives the client's bytes
 * (thinking blocks, signatures, cache_control; custom tools, reasoning items) with only the model and the output cap replaced, and provider prompt
 * caching keeps hitting. The pipeline still works on the canonical translation of the same body.
 *
 * The surface puts a NativeRequest in `ctx.state[NATIVE_REQUEST_KEY]`; `createTargetCaller` hands it to the
 * provider as `CallOptions.native`. The provider uses it only when `requestFingerprint` of the request it is
 * asked to send equals the recorded one: a step that rewrote the canonical request (input guard redaction,
 * tool stripping) makes the provider send the translated canonical request instead, so no step is bypassed.
 */
export const NATIVE_REQUEST_KEY = 'nativeRequest'

/** Wire formats with a pass-through: Anthropic Messages (/v1/messages), OpenAI Responses (/v1/responses). */
export type NativeFormat = 'anthropic' | 'responses'

export interface NativeRequest {
  /** The wire format of `body`; a provider uses only the format it speaks. */
  format: NativeFormat
  /** The client's request body as received (parsed JSON). */
  body: Record<string, unknown>
  /** `requestFingerprint` of the canonical translation of `body`. */
  fingerprint: string
  /**
   * True when the canonical translation left out parts of `body` it has no form for (custom and built-in tools on
   * /v1/responses): if a step changed the request, the provider must refuse rather than send the lossy translation.
   */
  lossy?: boolean
  /** Client headers that shape the upstream request (`anthropic-beta`). */
  headers?: Record<string, string>
}

/** Fields a step may change without changing what the native body means: the model and the output cap. */
const IGNORED = new Set(['model', 'max_tokens', 'max_completion_tokens', 'stream', 'stream_options'])

/**
 * What a canonical request says, apart from the model and the output cap. Equal fingerprints mean no step changed
 * the conversation, tools or sampling since the surface translated the native body.
 *
 * @example
 * requestFingerprint({ model: 'a', max_tokens: 10, messages }) === requestFingerprint({ model: 'b', max_tokens: 5, messages }) // true
 */
export function requestFingerprint(req: ChatRequest): string {
  const rest: Record<string, unknown> = {}
  for (const k of Object.keys(req)) if (!IGNORED.has(k)) rest[k] = req[k]
  return JSON.stringify(rest)
}

/**
 * What a provider answered in its own wire format, attached to the canonical completion or chunk it produced
 * (a symbol property: never serialised, never cached, copied by object spread). `fingerprint` is the JSON of the
 * canonical `choices` at creation: a surface renders the native form only while the choices are unchanged, so
 * an output guard that masked text always wins over the raw upstream bytes.
 */
export interface NativeAnswer<T> {
  format: NativeFormat
  value: T
  fingerprint: string
}

const NATIVE = Symbol.for('sluice.native')

/**
 * Attach the native form of an answer to its canonical object.
 *
 * @example
 * attachNative(completion, 'anthropic', message)
 */
export function attachNative<O extends { choices: unknown[] }, T>(obj: O, format: NativeAnswer<T>['format'], value: T): O {
  Object.defineProperty(obj, NATIVE, { value: { format, value, fingerprint: JSON.stringify(obj.choices) }, enumerable: true, configurable: true, writable: true })
  return obj
}

/**
 * The native form of a canonical answer, or undefined when there is none or the canonical choices were changed
 * after it was attached (then only the canonical object may be rendered).
 *
 * @example
 * const native = nativeAnswer<AnthropicMessage>(completion, 'anthropic')
 * return native ? c.json(native) : c.json(toAnthropicMessage(completion))
 */
export function nativeAnswer<T>(obj: { choices: unknown[] }, format: NativeAnswer<T>['format']): T | undefined {
  const n = (obj as unknown as Record<symbol, NativeAnswer<T> | undefined>)[NATIVE]
  if (!n || n.format !== format) return undefined
  return n.fingerprint === JSON.stringify(obj.choices) ? n.value : undefined
}

/** True when the object carries a native form at all (valid or not). */
export function hasNativeAnswer(obj: object): boolean {
  return NATIVE in obj
}
