import { z } from 'zod'

const otlpSchema = z.strictObject({
  /**
   * OTLP/HTTP base URL of a collector (e.g. `http://otel-collector:4318`); spans go to `{endpoint}/v1/traces`.
   * A URL that already ends in `/v1/traces` is used as it is.
   */
  endpoint: z.url({ protocol: /^https?$/, error: 'an http(s) URL such as http://localhost:4318' }),
  /** Extra request headers (e.g. a vendor's auth header); values may use `${ENV}`. */
  headers: z.record(z.string(), z.string()).default({}),
  service_name: z.string().min(1).default('sluice'),
  /** Share of new traces recorded (0..1). A caller's `traceparent` decides for its own traces. */
  sample_ratio: z.number().min(0).max(1).default(1),
  /** Per export request. */
  timeout_ms: z.number().int().positive().default(10_000),
  /** Spans waiting for export; further spans are dropped (and counted) until the queue drains. */
  max_queue_spans: z.number().int().positive().default(4096),
  /** Spans per export request. */
  max_batch_spans: z.number().int().positive().default(512),
  /** How long a span may wait for a full batch before a smaller one is sent. */
  batch_delay_ms: z.number().int().positive().default(1000)
})

/**
 * The gateway's `telemetry:` section. Absent (or without `otlp:`) means no traces and no exporter at all.
 *
 * @example
 * telemetry:
 *   otlp: { endpoint: http://localhost:4318, sample_ratio: 0.25 }
 */
export const telemetrySchema = z.strictObject({
  otlp: otlpSchema.optional()
})
export type TelemetryConfig = z.infer<typeof telemetrySchema>
export type OtlpConfig = z.infer<typeof otlpSchema>
