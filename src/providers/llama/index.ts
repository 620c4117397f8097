import { randomBytes, randomInt } from 'node:crypto'
import type { LlamaGrammar, Token } from 'node-llama-cpp'
import type { ProviderConfig } from '../../config/schema.js'
import { GatewayError, UpstreamError } from '../../errors.js'
import type { ChatChunk, ChatCompletion, ChatRequest, EmbeddingRequest, EmbeddingResponse, TokenLogprob, ToolCall, Usage } from '../../types.js'
import type { CallOptions, Provider } from '../types.js'
import { createChannel } from './channel.js'
import type { GenerationEvent, GenerationPlan, GenerationResult } from './generate.js'
import { toChatHistory, toFunctions } from './messages.js'
import { abortedError } from './queue.js'
import type { LlamaRuntime } from './runtime.js'

/** node-llama-cpp takes ~0.4 s to import: only gateways with a llama provider pay for it, on first load. */
type Engine = typeof import('./generate.js')
const loadEngine = () => Promise.all([import('./runtime.js'), import('./generate.js')])

/** The `kind: llama` provider config (providerSchema in src/config/schema.ts, after defaults). */
export type LlamaProviderConfig = Extract<ProviderConfig, { kind: 'llama' }>

/** Live numbers for metrics. Counters only grow; gauges are the current state. */
export interface LlamaStats {
  loaded: boolean
  /** Sequences in use (gauge). */
  active: number
  /** Requests waiting for a sequence (gauge). */
  queued: number
  concurrency: number
  /** Decode speed of recent requests, generated tokens per second (moving average; 0 before the first). */
  tokensPerSecond: number
  promptTokensTotal: number
  completionTokensTotal: number
  requestsTotal: number
}

export interface LlamaProvider extends Provider {
  readonly kind: 'llama'
  stats(): LlamaStats
  /** Load now (idempotent); resolves when ready, rejects with the load error. */
  ready(): Promise<void>
}

/**
 * An in-process provider over a GGUF model through node-llama-cpp: the model's own chat template, OpenAI
 * sampling parameters, token logprobs, tool calls, embeddings, `concurrency` parallel sequences with a FIFO
 * queue beyond them.
 *
 * @example
 * const local = createLlamaProvider('local', { kind: 'llama', model_path: './models/qwen.gguf', load: 'start',
 *   context_size: 4096, concurrency: 2, gpu: false, embedding: false })
 * const res = await local.chat({ model: 'qwen', messages: [{ role: 'user', content: 'hi' }] }, { signal })
 */
export function createLlamaProvider(name: string, config: LlamaProviderConfig): LlamaProvider {
  let runtime: Promise<LlamaRuntime> | undefined
  let loadError: GatewayError | undefined
  let closed = false
  const counters = { promptTokensTotal: 0, completionTokensTotal: 0, requestsTotal: 0, tokensPerSecond: 0 }
  let current: LlamaRuntime | undefined
  let engine: Engine

  const load = (): Promise<LlamaRuntime> => {
    if (closed) return Promise.reject(new GatewayError(503, `llama provider "${name}" is closed`, { code: 'provider_closed' }))
    runtime ??= loadEngine().then(
      ([rt, gen]) => {
        engine = gen
        return rt.loadLlamaRuntime(name, config)
      }
    ).then(
      (rt) => (current = rt),
      (err: unknown) => {
        loadError = err instanceof GatewayError ? err : new GatewayError(503, `llama provider "${name}": ${String(err)}`)
        // Forget the failed attempt so a later request retries (the file may appear); report it meanwhile.
        runtime = undefined
        throw loadError
      }
    )
    return runtime
  }
  if (config.load === 'start') load().catch(() => {})

  const record = (r: GenerationResult) => {
    counters.requestsTotal++
    counters.promptTokensTotal += r.promptTokens
    counters.completionTokensTotal += r.completionTokens
    if (r.completionTokens > 1 && r.decodeMs > 0) {
      const rate = ((r.completionTokens - 1) * 1000) / r.decodeMs
      counters.tokensPerSecond = counters.tokensPerSecond === 0 ? rate : counters.tokensPerSecond * 0.8 + rate * 0.2
    }
  }

  /**
   * Everything that can fail before the first token: load, render, context check, queue wait.
   * Resolves with a `run` that generates on the leased sequence and always releases it.
   */
  async function start(req: ChatRequest, opts: CallOptions, stop?: AbortSignal) {
    const signal = stop ? AbortSignal.any([callSignal(opts), stop]) : callSignal(opts)
    const rt = await load()
    const plan = await planFor(rt, req)
    const lease = await rt.sequences.acquire(signal)
    return {
      plan,
      async run(emit: (e: GenerationEvent) => void): Promise<GenerationResult> {
        try {
          const result = plan.functions
            ? await engine.generateWithTools(lease.slot, plan, signal, emit)
            : await engine.generateText(rt, lease.slot, plan, signal, emit)
          record(result)
          if (opts.signal.aborted || stop?.aborted) throw abortedError()
          if (signal.aborted) throw new UpstreamError(504, `llama provider "${name}" timed out`, { kind: 'timeout', code: 'upstream_timeout' })
          return result
        } catch (err) {
          if (err instanceof GatewayError) throw err
          throw new UpstreamError(500, `llama provider "${name}" failed while generating: ${err instanceof Error ? err.message : String(err)}`, {
            kind: 'protocol', code: 'local_model_error', retryable: true
          })
        } finally {
          lease.release()
        }
      }
    }
  }

  return {
    name,
    kind: 'llama',

    async chat(req, opts) {
      const { run } = await start(req, opts)
      let content = ''
      const logprobs: TokenLogprob[] = []
      let toolCalls: ToolCall[] | undefined
      const result = await run((e) => {
        if (e.type === 'text') {
          content += e.text
          if (e.logprobs) logprobs.push(...e.logprobs)
        } else toolCalls = e.calls.map(({ index: _index, ...call }) => call)
      })
      const completion: ChatCompletion = {
        id: completionId(),
        object: 'chat.completion',
        created: nowSeconds(),
        model: req.model,
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: toolCalls && !content ? null : content, ...(toolCalls ? { tool_calls: toolCalls } : {}) },
            finish_reason: result.finishReason,
            logprobs: req.logprobs ? { content: logprobs, refusal: null } : null
          }
        ],
        usage: usageOf(result),
        system_fingerprint: null
      }
      return completion
    },

    async chatStream(req, opts) {
      // A consumer that stops reading (client gone) stops generation too.
      const stop = new AbortController()
      const { run } = await start(req, opts, stop.signal)
      const id = completionId()
      const created = nowSeconds()
      const chunk = (choices: ChatChunk['choices'], usage?: Usage): ChatChunk => ({
        id, object: 'chat.completion.chunk', created, model: req.model, choices, ...(usage ? { usage } : {})
      })
      const channel = createChannel<ChatChunk>(() => stop.abort())
      channel.push(chunk([{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }]))
      run((e) => {
        if (stop.signal.aborted) return
        if (e.type === 'text') {
          channel.push(chunk([{ index: 0, delta: { content: e.text }, finish_reason: null, ...(e.logprobs ? { logprobs: { content: e.logprobs, refusal: null } } : {}) }]))
        } else {
          channel.push(chunk([{ index: 0, delta: { tool_calls: e.calls.map((c, index) => ({ ...c, index })) }, finish_reason: null }]))
        }
      }).then(
        (result) => {
          channel.push(chunk([{ index: 0, delta: {}, finish_reason: result.finishReason }]))
          channel.push(chunk([], usageOf(result)))
          channel.end()
        },
        (err: unknown) => channel.fail(err)
      )
      return channel
    },

    async embed(req, opts) {
      if (!config.embedding) {
        throw new GatewayError(400, `llama provider "${name}" has embedding: false; set embedding: true in its config`, { code: 'embeddings_disabled', param: 'model' })
      }
      const rt = await load()
      const pool = rt.embeddings!
      const inputs = embeddingInputs(req)
      const lease = await pool.acquire(callSignal(opts))
      try {
        let promptTokens = 0
        const data: EmbeddingResponse['data'] = []
        for (const [index, input] of inputs.entries()) {
          if (opts.signal.aborted) throw abortedError()
          const tokens = typeof input === 'string' ? rt.model.tokenize(input) : (input as Token[])
          if (tokens.length > rt.model.trainContextSize || tokens.length > config.context_size) {
            throw new UpstreamError(400, `input[${index}] has ${tokens.length} tokens; the embedding context holds ${config.context_size}`, {
              kind: 'context_length', code: 'context_length_exceeded', param: 'input', retryable: false
            })
          }
          promptTokens += tokens.length
          const { vector } = await lease.slot.getEmbeddingFor(tokens)
          const values = shapeEmbedding(vector, req.dimensions)
          data.push({ object: 'embedding', index, embedding: req.encoding_format === 'base64' ? toBase64(values) : values })
        }
        return { object: 'list', data, model: req.model, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } }
      } finally {
        lease.release()
      }
    },

    unavailableReason() {
      return current ? undefined : loadError?.message
    },

    ready: async () => { await load() },

    stats() {
      return {
        loaded: current !== undefined,
        active: current?.sequences.active() ?? 0,
        queued: current?.sequences.queued() ?? 0,
        concurrency: config.concurrency,
        ...counters
      }
    },

    async close() {
      closed = true
      const rt = await runtime?.catch(() => undefined)
      current = undefined
      await rt?.dispose()
    }
  }

  async function planFor(rt: LlamaRuntime, req: ChatRequest): Promise<GenerationPlan> {
    if (req.n != null && req.n > 1) throw new GatewayError(400, `llama provider "${name}" supports n = 1 only`, { param: 'n' })
    const history = toChatHistory(req.messages)
    const functions = toFunctions(req)
    const prompt = engine.renderPrompt(rt, history, functions)
    const room = rt.context.contextSize - prompt.tokens.length
    if (room <= 0) {
      throw new UpstreamError(400, `This model's context is ${rt.context.contextSize} tokens; the messages take ${prompt.tokens.length}`, {
        kind: 'context_length', code: 'context_length_exceeded', param: 'messages', retryable: false
      })
    }
    const requested = req.max_completion_tokens ?? req.max_tokens
    const stop = typeof req.stop === 'string' ? [req.stop] : (req.stop ?? [])
    return {
      history,
      functions,
      promptTokens: prompt.tokens,
      stop: [...stop.filter(Boolean), ...prompt.stop],
      // Never past the context: node-llama-cpp would otherwise shift it and keep going.
      maxTokens: Math.min(requested ?? room, room),
      temperature: req.temperature ?? 1,
      topP: req.top_p ?? 1,
      // node-llama-cpp's own default is the current second: every unseeded request in the same second would
      // sample the same tokens.
      seed: req.seed ?? randomInt(0x1_0000_0000 - 1),
      logprobs: req.logprobs === true,
      topLogprobs: req.logprobs ? Math.min(req.top_logprobs ?? 0, 20) : 0,
      grammar: functions ? undefined : await grammarFor(rt, req),
      tokenBias: engine.tokenBiasFor(rt, req.logit_bias)
    }
  }
}

async function grammarFor(rt: LlamaRuntime, req: ChatRequest): Promise<LlamaGrammar | undefined> {
  const format = req.response_format
  if (!format || format.type === 'text') return undefined
  try {
    if (format.type === 'json_schema' && format.json_schema?.schema) {
      return await rt.llama.createGrammarForJsonSchema(format.json_schema.schema as never)
    }
    return await rt.llama.getGrammarFor('json')
  } catch (err) {
    throw new GatewayError(400, `response_format cannot be enforced by the llama provider: ${err instanceof Error ? err.message : String(err)}`, { param: 'response_format' })
  }
}

/** The caller's signal, plus the call's total timeout when one is set. */
function callSignal(opts: CallOptions): AbortSignal {
  return opts.totalTimeoutMs ? AbortSignal.any([opts.signal, AbortSignal.timeout(opts.totalTimeoutMs)]) : opts.signal
}

function usageOf(r: GenerationResult): Usage {
  return {
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    total_tokens: r.promptTokens + r.completionTokens,
    prompt_tokens_details: { cached_tokens: r.cachedTokens }
  }
}

function embeddingInputs(req: EmbeddingRequest): (string | number[])[] {
  const input = req.input
  if (typeof input === 'string') return [input]
  if (input.length === 0) throw new GatewayError(400, 'input must not be empty', { param: 'input' })
  if (typeof input[0] === 'number') return [input as number[]]
  return input as (string | number[])[]
}

/** L2-normalise like OpenAI embeddings; `dimensions` truncates first (meaningful for Matryoshka-trained models). */
function shapeEmbedding(vector: readonly number[], dimensions?: number): number[] {
  if (dimensions != null && (dimensions < 1 || dimensions > vector.length)) {
    throw new GatewayError(400, `dimensions must be between 1 and ${vector.length} for this model`, { param: 'dimensions' })
  }
  const v = dimensions ? vector.slice(0, dimensions) : [...vector]
  const norm = Math.hypot(...v) || 1
  return v.map((x) => x / norm)
}

function toBase64(values: number[]): string {
  return Buffer.from(new Float32Array(values).buffer).toString('base64')
}

function completionId(): string {
  return `chatcmpl-${randomBytes(12).toString('base64url')}`
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000)
}
