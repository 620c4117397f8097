/**
 * An attribute value as spans carry it; undefined values are left out. Integer numbers are int64 attributes;
 * `{ double }` keeps a value that may happen to be whole (a cost of 0) a double, so its type never flips.
 */
export type AttributeValue = string | number | boolean | string[] | { double: number } | undefined

/** A finished span, times as `performance.now()` milliseconds. */
export interface SpanData {
  traceId: string
  spanId: string
  parentSpanId?: string
  traceState?: string
  name: string
  kind: 'server' | 'client' | 'internal'
  startMs: number
  endMs: number
  attributes: Record<string, AttributeValue>
  status: { code: 'unset' | 'ok' | 'error'; message?: string }
}

// OTLP/JSON writes enums as their integer values
const KIND = { internal: 1, server: 2, client: 3 } as const
const STATUS = { unset: 0, ok: 1, error: 2 } as const

export type OtlpAnyValue = { stringValue: string } | { intValue: string } | { doubleValue: number } | { boolValue: boolean } | { arrayValue: { values: OtlpAnyValue[] } }
export interface OtlpKeyValue {
  key: string
  value: OtlpAnyValue
}

/**
 * Encode spans as an OTLP/HTTP JSON `ExportTraceServiceRequest`: hex ids, unix nanoseconds as decimal
 * strings, int64 attributes as strings (the protobuf JSON mapping), enums as integers.
 *
 * @example
 * const body = JSON.stringify(encodeSpans({ 'service.name': 'sluice' }, { name: 'sluice', version: '0.1.0' }, spans))
 */
export function encodeSpans(resource: Record<string, AttributeValue>, scope: { name: string; version?: string }, spans: SpanData[]) {
  return {
    resourceSpans: [
      {
        resource: { attributes: encodeAttributes(resource) },
        scopeSpans: [
          {
            scope,
            spans: spans.map((s) => ({
              traceId: s.traceId,
              spanId: s.spanId,
              ...(s.parentSpanId ? { parentSpanId: s.parentSpanId } : {}),
              ...(s.traceState ? { traceState: s.traceState } : {}),
              name: s.name,
              kind: KIND[s.kind],
              startTimeUnixNano: unixNanos(s.startMs),
              endTimeUnixNano: unixNanos(Math.max(s.endMs, s.startMs)),
              attributes: encodeAttributes(s.attributes),
              status: s.status.message ? { code: STATUS[s.status.code], message: s.status.message } : { code: STATUS[s.status.code] }
            }))
          }
        ]
      }
    ]
  }
}

export function encodeAttributes(attrs: Record<string, AttributeValue>): OtlpKeyValue[] {
  const out: OtlpKeyValue[] = []
  for (const [key, v] of Object.entries(attrs)) {
    if (v === undefined) continue
    out.push({ key, value: anyValue(v) })
  }
  return out
}

function anyValue(v: Exclude<AttributeValue, undefined>): OtlpAnyValue {
  if (typeof v === 'string') return { stringValue: v }
  if (typeof v === 'boolean') return { boolValue: v }
  if (typeof v === 'number') return Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v }
  if (!Array.isArray(v)) return { doubleValue: v.double }
  return { arrayValue: { values: v.map((s) => ({ stringValue: s })) } }
}

/** `performance.now()` milliseconds → unix epoch nanoseconds (microsecond precision), as a decimal string. */
export function unixNanos(perfMs: number): string {
  return String(BigInt(Math.round((performance.timeOrigin + perfMs) * 1000)) * 1000n)
}
