import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { afterAll, beforeAll } from 'vitest'
import { stringify } from 'yaml'
import { loadConfig } from '../../src/config/load.js'
import { startServer, type ServerOptions } from '../../src/server.js'
import { startFakeOpenAI, type FakeOpenAI } from '../fakes/openai.js'

export const TEAM_A_KEY = 'sk-sluice-team-a-0000000000000001'
export const TEAM_B_KEY = 'sk-sluice-team-b-0000000000000002'
export const TEAM_C_KEY = 'sk-sluice-team-c-0000000000000003'
export const TEAM_D_KEY = 'sk-sluice-team-d-0000000000000004'
export const ADMIN_KEY = 'sk-sluice-admin-00000000000000009'

/** The keys every test config has: team `a` (alice) and team `b` (bob). */
export const DEFAULT_KEYS = [
  { key: TEAM_A_KEY, team: 'a', user: 'alice' },
  { key: TEAM_B_KEY, team: 'b', user: 'bob' }
]

/**
 * Write `<team>.yaml` per policy (teams `a` and `b` always exist) and `gateway.yaml` with the teams section filled
 * in; `base` is the config without `teams`, `extra` replaces top-level keys of it.
 *
 * @example
 * const { file } = writeConfigFiles(mkdtempSync(join(tmpdir(), 'x-')), { store: { kind: 'memory' } }, { a: { cache: {} } })
 */
export function writeConfigFiles(dir: string, base: Record<string, unknown>, policies: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  const teams: Record<string, { policy: string }> = {}
  for (const [team, policy] of Object.entries({ a: {}, b: {}, ...policies })) {
    writeFileSync(join(dir, `${team}.yaml`), stringify(policy))
    teams[team] = { policy: `${team}.yaml` }
  }
  const config: Record<string, unknown> = { ...base, teams, keys: DEFAULT_KEYS, admin_key: ADMIN_KEY, ...extra }
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, stringify(config))
  return { dir, file, config }
}

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
  const { file } = writeConfigFiles(
    mkdtempSync(join(tmpdir(), 'sluice-test-')),
    {
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
      }
    },
    opts.policies,
    opts.config
  )
  const loaded = await loadConfig(file, opts.env ?? {})
  const server = await startServer(loaded, { port: 0, host: '127.0.0.1', ...opts.server })
  return { ...server, dir: dirname(file), file, config: loaded }
}

export type TestGateway = Awaited<ReturnType<typeof startTestGateway>>

/**
 * The fake OpenAI upstream and a default gateway in front of it, for a whole test file: started before its
 * tests, closed after them. Read `fake` and `gw` inside tests (they are set once `beforeAll` has run).
 *
 * @example
 * const stack = useFakeOpenAIGateway()
 * it('lists models', async () => expect((await fetch(`${stack.gw.url}/v1/models`)).status).toBe(401))
 */
export function useFakeOpenAIGateway(): { fake: FakeOpenAI; gw: TestGateway } {
  const stack = {} as { fake: FakeOpenAI; gw: TestGateway }
  beforeAll(async () => {
    stack.fake = await startFakeOpenAI()
    stack.gw = await startTestGateway({ openaiUrl: stack.fake.url, openaiKey: stack.fake.apiKey })
  })
  afterAll(async () => {
    await stack.gw?.close(0)
    await stack.fake?.close()
  })
  return stack
}
