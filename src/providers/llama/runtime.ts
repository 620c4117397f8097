import { access } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import { ChatMLChatWrapper, getLlama, LlamaLogLevel, resolveChatWrapper } from 'node-llama-cpp'
import type { ChatWrapper, Llama, LlamaContext, LlamaContextSequence, LlamaEmbeddingContext, LlamaModel } from 'node-llama-cpp'
import { GatewayError } from '../../errors.js'
import { createSlotPool, type SlotPool } from './queue.js'

export interface LlamaRuntimeConfig {
  model_path: string
  context_size: number
  concurrency: number
  gpu: false | 'auto' | 'cuda' | 'metal' | 'vulkan'
  embedding: boolean
  /** CPU threads; default: available parallelism minus one (node-llama-cpp's own default can exceed the core count). */
  threads?: number
}

/** A loaded model: one context with `concurrency` sequences, pooled FIFO, and an optional embedding context. */
export interface LlamaRuntime {
  llama: Llama
  model: LlamaModel
  context: LlamaContext
  chatWrapper: ChatWrapper
  sequences: SlotPool<LlamaContextSequence>
  /** One embedding context, used by one request at a time. */
  embeddings?: SlotPool<LlamaEmbeddingContext>
  dispose(): Promise<void>
}

/**
 * Load the model and create its contexts. Failures become a 503 GatewayError naming the model path,
 * so a bad path or a corrupt file fails requests, not the process.
 *
 * @example
 * const rt = await loadLlamaRuntime({ model_path: './m.gguf', context_size: 2048, concurrency: 2, gpu: false, embedding: false })
 */
export async function loadLlamaRuntime(providerName: string, config: LlamaRuntimeConfig): Promise<LlamaRuntime> {
  const fail = (why: string) =>
    new GatewayError(503, `llama provider "${providerName}" cannot load model_path "${config.model_path}": ${why}`, {
      type: 'api_error',
      code: 'model_load_failed'
    })
  try {
    await access(config.model_path)
  } catch {
    throw fail('file not found or not readable')
  }

  let llama: Llama
  try {
    // build: 'never' — a gateway must not try to compile llama.cpp at request time; prebuilt binaries or nothing.
    llama = await getLlama({ gpu: config.gpu, build: 'never', logLevel: LlamaLogLevel.error })
  } catch (err) {
    throw fail(`no usable llama.cpp binary for gpu=${String(config.gpu)} (${messageOf(err)})`)
  }

  // One core stays with the event loop (HTTP, SSE, JSON). llama.cpp threads spin at barriers, so more threads
  // than free cores collapses throughput (measured: 0.5 ms/token with 1 thread, over 1 s/token with 4 on 2 busy cores).
  const threads = config.threads ?? Math.max(1, availableParallelism() - 1)
  let model: LlamaModel | undefined
  try {
    model = await llama.loadModel({ modelPath: config.model_path, gpuLayers: config.gpu === false ? 0 : 'auto' })
    const context = await model.createContext({
      contextSize: config.context_size,
      sequences: config.concurrency,
      threads,
      failedCreationRemedy: false
    })
    const seqs = Array.from({ length: config.concurrency }, () => context.getSequence())
    const embeddingContext = config.embedding
      ? await model.createEmbeddingContext({ contextSize: config.context_size, threads })
      : undefined
    const loaded = model
    return {
      llama,
      model: loaded,
      context,
      // The model's own template (tokenizer.chat_template); ChatML when the file has none it recognises.
      chatWrapper: resolveChatWrapper(loaded) ?? new ChatMLChatWrapper(),
      sequences: createSlotPool(seqs),
      embeddings: embeddingContext ? createSlotPool([embeddingContext]) : undefined,
      async dispose() {
        await embeddingContext?.dispose()
        await context.dispose()
        await loaded.dispose()
      }
    }
  } catch (err) {
    await model?.dispose().catch(() => {})
    throw fail(messageOf(err))
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
