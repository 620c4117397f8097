import type { GatewayConfig } from '../config/load.js'
import type { ProviderConfig } from '../config/schema.js'
import { createAnthropicProvider } from './anthropic/index.js'
import { createLlamaProvider, type LlamaProviderConfig } from './llama/index.js'
import { createOpenAIProvider } from './openai/index.js'
import type { Provider } from './types.js'

/** Builds a provider from its config entry; kinds register here. */
export type ProviderFactory = (name: string, config: ProviderConfig, missingKeyVar?: string) => Provider

const factories: Partial<Record<ProviderConfig['kind'], ProviderFactory>> = {
  openai: (name, config, missing) => createOpenAIProvider(name, config as Extract<ProviderConfig, { kind: 'openai' }>, missing),
  anthropic: (name, config, missing) => createAnthropicProvider(name, config as Extract<ProviderConfig, { kind: 'anthropic' }>, missing),
  // node-llama-cpp itself is imported only when a model is first loaded
  llama: (name, config) => createLlamaProvider(name, config as LlamaProviderConfig)
}

/** Register the factory of a provider kind (anthropic, llama) — keeps heavy modules out of start-up unless configured. */
export function registerProviderKind(kind: ProviderConfig['kind'], factory: ProviderFactory): void {
  factories[kind] = factory
}

/**
 * Create every configured provider. Providers whose API key variable is unset are created but report
 * `unavailableReason()`, so calling one gives a clear 503.
 *
 * @example
 * const providers = createProviders(config) // Map { 'openai' => Provider, ... }
 */
export function createProviders(config: Pick<GatewayConfig, 'providers' | 'missingEnv'>): Map<string, Provider> {
  const out = new Map<string, Provider>()
  for (const [name, pc] of Object.entries(config.providers)) {
    const factory = factories[pc.kind]
    if (!factory) throw new Error(`provider kind "${pc.kind}" is not available in this build`)
    out.set(name, factory(name, pc, config.missingEnv[name]))
  }
  return out
}
