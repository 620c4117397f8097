import type { Counter, Registry } from 'prom-client'
import { counter } from '../metrics/deferred.js'
import type { ChatChunk, ChatCompletion } from '../types.js'
import type { ProviderConfig } from '../config/schema.js'
import type { Step } from '../context.js'
import { observeStream } from '../stream.js'
import { createOtlpExporter } from './exporter.js'
import type { TelemetryConfig } from './schema.js'
import { requestSpans, type AnswerSeen } from './spans.js'
import { startTrace } from './trace-context.js'

export { telemetrySchema, type TelemetryConfig } from './schema.js'

export interface TracingDeps {
  /** The running config's providers (read per request: reloads may change them). */
  providerConfig: (name: string) => ProviderConfig | undefined
  registry?: Registry
  log?: (level: 'info' | 'warn' | 'error', msg: string) => void
}

/**
 * OpenTelemetry traces for the gateway, or undefined when `telemetry.otlp` is not configured (then nothing
 * is added to the request path). Returns the pipeline step to put first and a `close` for shutdown.
 * Create it once per gateway: it owns the exporter's queue and connections.
 *
 * The step decides sampling from the caller's `traceparent` (or `sample_ratio`), notes the answer's model,
 * id and finish reasons as they pass (streams too), and at the end of the request turns the finished
 * RequestContext into spans on the exporter's queue; export happens in the background.
 *
 * @example
 * const tracing = createTracing(config.telemetry, { providerConfig: (n) => rt.config.providers[n], registry })
 * const run = createPipeline([...(tracing ? [tracing.step] : []), ...steps, router])
 * await tracing?.close()
 */
export function createTracing(config: TelemetryConfig | undefined, deps: TracingDeps) {
  const otlp = config?.otlp
  if (!otlp) return undefined
  // a registry shared by two gateways (tests) must not register the counter twice
  const existing = deps.registry?.getSingleMetric('sluice_otel_spans_total') as Counter<'result'> | undefined
  const spansTotal = existing ?? (deps.registry
    ? counter({ name: 'sluice_otel_spans_total', help: 'Trace spans by export result (exported, dropped when the queue was full, failed).', labelNames: ['result'] as const, registers: [deps.registry] })
    : undefined)
  const exporter = createOtlpExporter({
    endpoint: otlp.endpoint,
    headers: otlp.headers,
    resource: { 'service.name': otlp.service_name, 'telemetry.sdk.name': 'sluice', 'telemetry.sdk.language': 'nodejs' },
    scope: { name: 'sluice' },
    timeoutMs: otlp.timeout_ms,
    maxQueueSpans: otlp.max_queue_spans,
    maxBatchSpans: otlp.max_batch_spans,
    batchDelayMs: otlp.batch_delay_ms,
    onSpans: (result, n) => spansTotal?.inc({ result }, n),
    log: deps.log
  })

  const step: Step = async (ctx, next) => {
    const trace = startTrace(ctx.headers.traceparent, ctx.headers.tracestate, otlp.sample_ratio)
    if (!trace) return next()
    const seen: AnswerSeen = { answered: false, finishReasons: [] }
    ctx.onDone.push((c, error) => {
      // building a few small objects is all that happens on the request path; JSON and HTTP come later
      exporter.enqueue(requestSpans(c, error, trace, seen, deps.providerConfig, performance.now()))
    })
    const result = await next()
    seen.answered = true
    if (result.type === 'json') {
      noteAnswer(seen, result.body)
      return result
    }
    return { type: 'stream', stream: observeStream(result.stream, { map: (chunk) => (noteAnswer(seen, chunk), chunk), onEnd: () => {} }) }
  }

  return {
    step,
    /** Export what is queued (bounded wait), then release the exporter. */
    close: () => exporter.close(),
    stats: exporter.stats
  }
}

export type Tracing = NonNullable<ReturnType<typeof createTracing>>

function noteAnswer(seen: AnswerSeen, answer: ChatCompletion | ChatChunk) {
  if (answer.model && !seen.responseModel) seen.responseModel = answer.model
  if (answer.id && !seen.responseId) seen.responseId = answer.id
  for (const choice of answer.choices ?? []) {
    const reason = choice.finish_reason
    if (reason) seen.finishReasons[choice.index ?? 0] = reason
  }
}
