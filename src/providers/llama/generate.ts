import { randomBytes } from 'node:crypto'
import { LlamaChat, LlamaGrammarEvaluationState, LlamaText, TokenBias } from 'node-llama-cpp'
import type { ChatHistoryItem, ChatModelFunctions, LlamaContextSequence, LlamaGrammar, LlamaModel, Token } from 'node-llama-cpp'
import { GatewayError } from '../../errors.js'
import type { TokenLogprob, ToolCall } from '../../types.js'
import type { LlamaRuntime } from './runtime.js'

/** What to generate: a rendered prompt and OpenAI sampling parameters already resolved. */
export interface GenerationPlan {
  history: ChatHistoryItem[]
  functions?: ChatModelFunctions
  /** Prompt tokens as the model's chat template renders `history` (and `functions`). */
  promptTokens: Token[]
  /** Text stop sequences: the request's `stop` and the template's own end-of-turn texts. */
  stop: string[]
  maxTokens: number
  temperature: number
  topP: number
  seed?: number
  logprobs: boolean
  topLogprobs: number
  grammar?: LlamaGrammar
  tokenBias?: TokenBias
}

export type GenerationEvent =
  | { type: 'text'; text: string; logprobs?: TokenLogprob[] }
  | { type: 'tool_calls'; calls: ToolCall[] }

export interface GenerationResult {
  finishReason: 'stop' | 'length' | 'tool_calls'
  promptTokens: number
  /** Prompt tokens already in the sequence from an earlier request (a shared prefix), not evaluated again. */
  cachedTokens: number
  completionTokens: number
  /** Milliseconds from the first generated token to the last. */
  decodeMs: number
}

/**
 * Render the chat history with the model's chat template and tokenize it; returns the template's text
 * stop triggers too (special-token triggers end generation on their own as end-of-generation tokens).
 */
export function renderPrompt(rt: LlamaRuntime, history: ChatHistoryItem[], functions?: ChatModelFunctions) {
  const state = rt.chatWrapper.generateContextState({ chatHistory: history, availableFunctions: functions, documentFunctionParams: true })
  const stop: string[] = []
  for (const trigger of state.stopGenerationTriggers) {
    const values = LlamaText(trigger).values
    if (values.every((v) => typeof v === 'string')) stop.push(values.join(''))
  }
  return { tokens: state.contextText.tokenize(rt.model.tokenizer), stop: stop.filter(Boolean) }
}

/**
 * Generate token by token on one context sequence, reusing any prefix the sequence already holds.
 * Emits text as it becomes final (complete UTF-8, clear of a possible stop sequence) with per-token logprobs.
 */
export async function generateText(
  rt: LlamaRuntime,
  seq: LlamaContextSequence,
  plan: GenerationPlan,
  signal: AbortSignal,
  emit: (e: GenerationEvent) => void
): Promise<GenerationResult> {
  const tokens = plan.promptTokens
  await seq.adaptStateToTokens(tokens, false)
  // Something must be evaluated to get logits for the first new token.
  if (seq.nextTokenIndex >= tokens.length) await seq.eraseContextTokenRanges([{ start: tokens.length - 1, end: seq.nextTokenIndex }])
  const cachedTokens = seq.nextTokenIndex

  const text = createStopScanner(plan.stop)
  const pieces = createPieceDecoder(rt.model)
  let pendingLogprobs: TokenLogprob[] = []
  let completionTokens = 0
  let finishReason: GenerationResult['finishReason'] = 'stop'
  let firstTokenAt = 0

  const flush = (final: boolean) => {
    const out = final ? text.drain() : text.take()
    if (out || (final && pendingLogprobs.length > 0)) {
      emit({ type: 'text', text: out, logprobs: plan.logprobs ? pendingLogprobs : undefined })
      pendingLogprobs = []
    }
  }

  const iterator = seq.evaluateWithMetadata(
    tokens.slice(cachedTokens),
    { confidence: plan.logprobs, probabilities: plan.logprobs && plan.topLogprobs > 0 },
    {
      ...sampling(plan),
      grammarEvaluationState: plan.grammar ? new LlamaGrammarEvaluationState({ model: rt.model, grammar: plan.grammar }) : undefined
    }
  )
  try {
    for await (const out of iterator as AsyncIterable<{ token: Token; confidence?: number; probabilities?: Map<Token, number> }>) {
      if (signal.aborted) break
      if (completionTokens === 0) firstTokenAt = performance.now()
      completionTokens++
      const piece = pieces.push(out.token)
      if (plan.logprobs) pendingLogprobs.push(tokenLogprob(rt.model, out.token, out.confidence, out.probabilities, plan.topLogprobs))
      if (piece) text.append(piece)
      if (text.stopped) break
      flush(false)
      if (completionTokens >= plan.maxTokens) {
        finishReason = 'length'
        break
      }
    }
  } finally {
    await iterator.return(undefined)
  }
  if (!text.stopped) text.append(pieces.end())
  flush(true)
  return { finishReason, promptTokens: tokens.length, cachedTokens, completionTokens, decodeMs: firstTokenAt ? performance.now() - firstTokenAt : 0 }
}

/**
 * The plan's OpenAI sampling in node-llama-cpp's terms, the same on both generation paths. Top-k and min-p are
 * off: the OpenAI API has neither, so only what the client asked for shapes the distribution.
 */
function sampling(plan: GenerationPlan) {
  return { temperature: plan.temperature, topP: plan.topP, topK: 0, minP: 0, seed: plan.seed, tokenBias: plan.tokenBias }
}

/**
 * Generate with node-llama-cpp's LlamaChat, which knows each chat template's function-calling syntax and
 * constrains call arguments with a grammar. Used when the request offers tools; no logprobs on this path.
 */
export async function generateWithTools(
  seq: LlamaContextSequence,
  plan: GenerationPlan,
  signal: AbortSignal,
  emit: (e: GenerationEvent) => void
): Promise<GenerationResult> {
  const chat = new LlamaChat({ contextSequence: seq, autoDisposeSequence: false })
  const meter = seq.tokenMeter.getState()
  let completionTokens = 0
  let firstTokenAt = 0
  try {
    const res = await chat.generateResponse(plan.history, {
      functions: plan.functions,
      documentFunctionParams: true,
      maxTokens: plan.maxTokens,
      ...sampling(plan),
      customStopTriggers: plan.stop.length > 0 ? plan.stop : undefined,
      signal,
      stopOnAbortSignal: true,
      onToken(tokens) {
        if (completionTokens === 0) firstTokenAt = performance.now()
        completionTokens += tokens.length
      },
      onTextChunk(text) {
        if (text) emit({ type: 'text', text })
      }
    })
    const calls = (res.functionCalls ?? []).map((call, index): ToolCall => ({
      index,
      id: `call_${randomBytes(12).toString('base64url')}`,
      type: 'function',
      function: { name: call.functionName, arguments: JSON.stringify(call.params ?? {}) }
    }))
    if (calls.length > 0) emit({ type: 'tool_calls', calls })
    const used = seq.tokenMeter.diff(meter)
    return {
      finishReason: calls.length > 0 ? 'tool_calls' : res.metadata.stopReason === 'maxTokens' ? 'length' : 'stop',
      promptTokens: plan.promptTokens.length,
      cachedTokens: Math.max(0, plan.promptTokens.length - used.usedInputTokens),
      completionTokens,
      decodeMs: firstTokenAt ? performance.now() - firstTokenAt : 0
    }
  } finally {
    chat.dispose({ disposeSequence: false })
  }
}

/** OpenAI `logit_bias` ({token id: -100..100}, added to the logit) → node-llama-cpp TokenBias. */
export function tokenBiasFor(rt: LlamaRuntime, logitBias: unknown): TokenBias | undefined {
  if (logitBias == null) return undefined
  if (typeof logitBias !== 'object') throw new GatewayError(400, 'logit_bias must be an object of token id → bias', { param: 'logit_bias' })
  const bias = new TokenBias(rt.model.tokenizer)
  const vocabSize = vocabularySize(rt)
  for (const [id, value] of Object.entries(logitBias)) {
    const token = Number(id)
    if (!Number.isInteger(token) || token < 0 || token >= vocabSize || typeof value !== 'number' || value < -100 || value > 100) {
      throw new GatewayError(400, `logit_bias: "${id}": ${String(value)} is not a token id of this model with a bias in -100..100`, { param: 'logit_bias' })
    }
    bias.set(token as Token, { logit: value })
  }
  return bias
}

/** From the GGUF metadata; llama.cpp would read out of bounds on a token id past the vocabulary. */
function vocabularySize(rt: LlamaRuntime): number {
  const tokens = (rt.model.fileInfo.metadata as unknown as { tokenizer?: { ggml?: { tokens?: unknown[] } } }).tokenizer?.ggml?.tokens
  return tokens?.length ?? 0
}

function tokenLogprob(model: LlamaModel, token: Token, p: number | undefined, probs: Map<Token, number> | undefined, top: number): TokenLogprob {
  const entry = (t: Token, prob: number) => {
    const text = model.detokenize([t], true)
    return { token: text, logprob: toLogprob(prob), bytes: text.includes('\uFFFD') ? null : [...Buffer.from(text, 'utf8')] }
  }
  const top_logprobs: NonNullable<TokenLogprob['top_logprobs']> = []
  if (probs) {
    for (const [t, prob] of probs) {
      if (top_logprobs.length >= top) break
      top_logprobs.push(entry(t, prob))
    }
  }
  return { ...entry(token, p ?? probs?.get(token) ?? 0), top_logprobs }
}

/** OpenAI uses -9999 for "effectively impossible"; JSON has no -Infinity. */
function toLogprob(p: number): number {
  return p > 0 ? Math.max(Math.log(p), -9999) : -9999
}

/**
 * Decode tokens to text incrementally. Byte-fallback tokens can split a UTF-8 character across tokens,
 * so a piece is held back while it ends in an incomplete character.
 */
function createPieceDecoder(model: LlamaModel) {
  const history: Token[] = []
  let pending: Token[] = []
  const decode = () => model.detokenize(pending, false, history.slice(-8))
  return {
    push(token: Token): string {
      pending.push(token)
      const text = decode()
      if (text.endsWith('\uFFFD') && pending.length < 4) return ''
      history.push(...pending)
      pending = []
      return text
    },
    end(): string {
      if (pending.length === 0) return ''
      const text = decode()
      pending = []
      return text
    }
  }
}

/**
 * Accumulates generated text and finds stop sequences; `take` releases only text that cannot be the start
 * of a stop sequence, so a stop split across tokens is never streamed out.
 */
function createStopScanner(stops: string[]) {
  const hold = Math.max(0, ...stops.map((s) => s.length - 1))
  let text = ''
  let released = 0
  let stopped = false
  return {
    get stopped() { return stopped },
    append(piece: string) {
      if (stopped || !piece) return
      const from = Math.max(0, text.length - hold)
      text += piece
      let cut = -1
      for (const s of stops) {
        const i = text.indexOf(s, from)
        if (i >= 0 && (cut < 0 || i < cut)) cut = i
      }
      if (cut >= 0) {
        text = text.slice(0, cut)
        stopped = true
      }
    },
    take(): string {
      const end = stopped ? text.length : Math.max(released, text.length - hold)
      const out = text.slice(released, end)
      released = end
      return out
    },
    drain(): string {
      const out = text.slice(released)
      released = text.length
      return out
    }
  }
}
