import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/load.js'
import { startServer, type ServerOptions } from '../../src/server.js'

export const TEAM_A_KEY = 'sk-sluice-team-a-0000000000000001'
export const TEAM_B_KEY = 'sk-sluice-team-b-0000000000000002'
export const ADMIN_KEY = 'sk-sluice-admin-00000000000000009'

export interface TestGatewayOptions {
  /** Provider base URLs by name; an `openai` fake and an `anthropic` fake are the usual ones. */
  openaiUrl?: string
  openaiKey?: string
  anthropicUrl?: string
  anthropicKey?: string
  /** Policies by team (YAML objects); teams `a` and `b` exist by default. */
  policies?: Record<string, unknown>
  /** Extra or replaced top-level config (store, models, providers, server…). */
  config?: Record<string, unknown>
  env?: Record<string, string | undefined>
  server?: ServerOptions
}

/**
 * Write a config (and policy files) into a temp folder, load it through the real loader, and start a gateway
 * on a free port.
 *
 * @example
 * const gw = await startTestGateway({ openaiUrl: fake.url, openaiKey: fake.apiKey })
 * const client = new OpenAI({ baseURL: gw.url + '/v1', apiKey: TEAM_A_KEY })
 */
export async function startTestGateway(opts: TestGatewayOptions = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-test-'))
  const policies = { a: {}, b: {}, ...opts.policies }
  const teams: Record<string, { policy: string }> = {}
  for (const [team, policy] of Object.entries(policies)) {
    writeFileSync(join(dir, `${team}.yaml`), stringify(policy))
    teams[team] = { policy: `${team}.yaml` }
  }
  const config = {
    server: { port: 0, host: '127.0.0.1', shutdown_grace_ms: 2000 },
    store: { kind: 'memory' },
    prices: join(process.cwd(), 'config/prices.yaml'),
    providers: {
      openai: { kind: 'openai', base_url: opts.openaiUrl ?? 'http://127.0.0.1:9/v1', api_key: opts.openaiKey ?? 'sk-none' },
      anthropic: { kind: 'anthropic', base_url: opts.anthropicUrl ?? 'http://127.0.0.1:9', api_key: opts.anthropicKey ?? 'sk-none' }
    },
    models: {
      'gpt-4o-mini': { provider: 'openai', model: 'gpt-4o-mini' },
      'gpt-4o': { provider: 'openai', model: 'gpt-4o' },
      'text-embedding-3-small': { provider: 'openai', model: 'text-embedding-3-small', type: 'embedding' },
      'claude-sonnet': { provider: 'anthropic', model: 'claude-sonnet-4-5' }
    },
    teams,
    keys: [
      { key: TEAM_A_KEY, team: 'a', user: 'alice' },
      { key: TEAM_B_KEY, team: 'b', user: 'bob' }
    ],
    admin_key: ADMIN_KEY,
    ...opts.config
  }
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, stringify(config))
  const loaded = await loadConfig(file, opts.env ?? {})
  const server = await startServer(loaded, { port: 0, host: '127.0.0.1', ...opts.server })
  return { ...server, dir, file, config: loaded }
}

export type TestGateway = Awaited<ReturnType<typeof startTestGateway>>
