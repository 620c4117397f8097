import { randomFillSync } from 'node:crypto'

/** Where a request's spans hang in a trace. */
export interface TraceContext {
  traceId: string
  /** The caller's span (from `traceparent`), parent of the gateway's server span. */
  parentSpanId?: string
  /** The caller's `tracestate`, kept on the server span. */
  traceState?: string
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const ZERO_TRACE = '0'.repeat(32)
const ZERO_SPAN = '0'.repeat(16)

/**
 * Parse a W3C `traceparent` header. Invalid values (all-zero ids, version ff, a version-00 header with
 * extra fields) are ignored, as the spec asks: the request then starts a trace of its own.
 *
 * @example
 * parseTraceparent('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01')
 * // { traceId: '4bf9…4736', parentSpanId: '00f0…02b7', sampled: true }
 */
export function parseTraceparent(header: string | undefined): { traceId: string; parentSpanId: string; sampled: boolean } | undefined {
  if (!header) return undefined
  const m = TRACEPARENT.exec(header.trim())
  if (!m) return undefined
  const [, version, traceId, spanId, flags, rest] = m
  if (version === 'ff' || (version === '00' && rest) || traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined
  return { traceId: traceId!, parentSpanId: spanId!, sampled: (parseInt(flags!, 16) & 1) === 1 }
}

/**
 * Decide whether a request is traced and where: a caller's sampled `traceparent` makes it a child of the
 * caller's span (and an unsampled one stops it); otherwise a new trace is kept with probability `ratio`
 * (parent-based, trace-id-ratio sampling — OpenTelemetry's default sampler).
 *
 * @example
 * const trace = startTrace(ctx.headers.traceparent, ctx.headers.tracestate, 0.1)
 * if (!trace) return next()
 */
export function startTrace(traceparent: string | undefined, tracestate: string | undefined, ratio: number): TraceContext | undefined {
  const parent = parseTraceparent(traceparent)
  if (parent) return parent.sampled ? { traceId: parent.traceId, parentSpanId: parent.parentSpanId, traceState: tracestate?.slice(0, 512) || undefined } : undefined
  const traceId = randomHex(16)
  return sampledByRatio(traceId, ratio) ? { traceId } : undefined
}

/**
 * Consistent ratio sampling on the trace id's last 56 bits (random per W3C level 2), so every service
 * using the same rule keeps the same traces.
 */
export function sampledByRatio(traceId: string, ratio: number): boolean {
  if (ratio >= 1) return true
  if (ratio <= 0) return false
  return parseInt(traceId.slice(18), 16) < ratio * 2 ** 56
}

// ids come from a pooled random buffer: one getrandom call per 512 span ids instead of one each
const pool = Buffer.alloc(4096)
let poolAt = pool.length

/** `bytes` random bytes as lower-case hex, never all zeros (an invalid id). */
export function randomHex(bytes: number): string {
  for (;;) {
    if (poolAt + bytes > pool.length) {
      randomFillSync(pool)
      poolAt = 0
    }
    const hex = pool.toString('hex', poolAt, poolAt + bytes)
    poolAt += bytes
    if (!/^0+$/.test(hex)) return hex
  }
}

/** A new span id (8 random bytes, hex). */
export const newSpanId = (): string => randomHex(8)
