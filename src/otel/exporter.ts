import { Pool } from 'undici'
import { encodeSpans, type AttributeValue, type SpanData } from './encode.js'

export interface ExporterOptions {
  /** Collector base URL; `/v1/traces` is appended unless already there. */
  endpoint: string
  headers?: Record<string, string>
  resource: Record<string, AttributeValue>
  scope: { name: string; version?: string }
  timeoutMs: number
  maxQueueSpans: number
  maxBatchSpans: number
  batchDelayMs: number
  /** Span counts by outcome, for metrics. */
  onSpans?: (result: 'exported' | 'dropped' | 'failed', count: number) => void
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void
}

/**
 * A batching OTLP/HTTP JSON span exporter. `enqueue` only pushes onto a bounded queue (never waits, never
 * throws): batches go out in the background, one request at a time, each bounded by `timeoutMs`. A full
 * queue drops new spans and counts them; a failed export drops its batch (no retry: traces are best-effort
 * and a retry queue would only hold memory while a collector is down).
 *
 * @example
 * const exporter = createOtlpExporter({ endpoint: 'http://localhost:4318', resource: { 'service.name': 'sluice' }, scope: { name: 'sluice' }, timeoutMs: 10_000, maxQueueSpans: 4096, maxBatchSpans: 512, batchDelayMs: 1000 })
 * exporter.enqueue(spans)
 * await exporter.close()
 */
export function createOtlpExporter(opts: ExporterOptions) {
  const url = tracesUrl(opts.endpoint)
  const pool = new Pool(url.origin, { connections: 2, connectTimeout: opts.timeoutMs, headersTimeout: opts.timeoutMs, bodyTimeout: opts.timeoutMs })
  const headers = { ...opts.headers, 'content-type': 'application/json' }
  const queue: SpanData[] = []
  let timer: NodeJS.Timeout | undefined
  let sending: Promise<void> | undefined
  let closed = false
  let lastWarn = 0
  const stats = { exported: 0, dropped: 0, failed: 0 }

  const count = (result: keyof typeof stats, n: number) => {
    if (n === 0) return
    stats[result] += n
    opts.onSpans?.(result, n)
  }

  // one warning a minute at most: a collector that is down must not flood the logs
  const warn = (msg: string) => {
    const now = Date.now()
    if (now - lastWarn < 60_000) return
    lastWarn = now
    opts.log?.('warn', msg)
  }

  const send = async (batch: SpanData[]) => {
    try {
      const res = await pool.request({
        path: url.pathname + url.search,
        method: 'POST',
        headers,
        body: JSON.stringify(encodeSpans(opts.resource, opts.scope, batch)),
        signal: AbortSignal.timeout(opts.timeoutMs)
      })
      await res.body.dump()
      if (res.statusCode >= 200 && res.statusCode < 300) count('exported', batch.length)
      else {
        count('failed', batch.length)
        warn(`OTLP export to ${url.href} answered ${res.statusCode}; ${batch.length} spans dropped`)
      }
    } catch (err) {
      count('failed', batch.length)
      warn(`OTLP export to ${url.href} failed (${(err as Error).message}); ${batch.length} spans dropped`)
    }
  }

  const kick = () => {
    if (timer) {
      clearTimeout(timer)
      timer = undefined
    }
    if (sending || queue.length === 0) return
    sending = send(queue.splice(0, opts.maxBatchSpans)).finally(() => {
      sending = undefined
      if (queue.length >= opts.maxBatchSpans || (closed && queue.length)) kick()
      else schedule()
    })
  }

  const schedule = () => {
    if (timer || sending || queue.length === 0) return
    timer = setTimeout(kick, opts.batchDelayMs)
    // pending spans never keep the process alive; close() flushes them
    timer.unref()
  }

  return {
    /** Queue finished spans for export. Never blocks; drops (and counts) what does not fit. */
    enqueue(spans: SpanData[]) {
      if (closed) return count('dropped', spans.length)
      const room = Math.max(0, opts.maxQueueSpans - queue.length)
      for (let i = 0; i < spans.length && i < room; i++) queue.push(spans[i]!)
      count('dropped', spans.length - Math.min(room, spans.length))
      if (queue.length >= opts.maxBatchSpans) kick()
      else schedule()
    },

    /** Send everything queued now; resolves when the queue is empty or after `maxWaitMs` at most. */
    async flush(maxWaitMs = opts.timeoutMs) {
      let expired = false
      const wait = new Promise<void>((resolve) => setTimeout(() => resolve(void (expired = true)), maxWaitMs).unref())
      while ((queue.length || sending) && !expired) {
        kick()
        if (sending) await Promise.race([sending, wait])
      }
    },

    /**
     * Flush for up to `maxWaitMs` (shutdown must not hang on a collector that is away), then drop what is
     * left and release the connections. Spans enqueued afterwards are dropped.
     */
    async close(maxWaitMs = Math.min(opts.timeoutMs, 5000)) {
      await this.flush(maxWaitMs)
      closed = true
      if (timer) clearTimeout(timer)
      count('dropped', queue.splice(0).length)
      await pool.destroy().catch(() => {})
    },

    stats: () => ({ ...stats, queued: queue.length })
  }
}

export type OtlpExporter = ReturnType<typeof createOtlpExporter>

/** `{endpoint}/v1/traces`, as OTEL_EXPORTER_OTLP_ENDPOINT works; a URL already ending in /v1/traces is kept. */
export function tracesUrl(endpoint: string): URL {
  const url = new URL(endpoint)
  if (!/\/v1\/traces\/?$/.test(url.pathname)) url.pathname = url.pathname.replace(/\/+$/, '') + '/v1/traces'
  return url
}
