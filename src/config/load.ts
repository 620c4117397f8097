import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { z } from 'zod'
import { interpolateEnv } from './env.js'
import {
  gatewayConfigSchema,
  priceSchema,
  teamPolicySchema,
  type GatewayConfigParsed,
  type ModelConfig,
  type Price,
  type TeamPolicy
} from './schema.js'

export type ResolvedModel = ModelConfig & { price: Price }

/** The gateway config after validation, with prices resolved and team policies loaded. */
export interface GatewayConfig extends Omit<GatewayConfigParsed, 'models'> {
  file: string
  models: Record<string, ResolvedModel>
  policies: Record<string, TeamPolicy>
  /** Provider name → the environment variable its API key needs but that is not set. */
  missingEnv: Record<string, string>
  /** Files the config was built from (for hot reload). */
  files: string[]
  warnings: string[]
}

/** A config that cannot be used. The message names the file, the path and the fix. */
export class ConfigError extends Error {}

/**
 * Load, interpolate and validate the gateway config and every policy file it references.
 *
 * @example
 * const config = await loadConfig('config/gateway.yaml')
 */
export async function loadConfig(file: string, env: Record<string, string | undefined> = process.env): Promise<GatewayConfig> {
  const path = resolve(file)
  const raw = await readYaml(path, 'write the gateway config (README, Configuration)')
  const { value, missing } = interpolateEnv(raw, env)
  const parsed = validate(gatewayConfigSchema, value, path)
  const dir = dirname(path)
  const files = [path]
  const warnings: string[] = []

  const missingEnv: Record<string, string> = {}
  for (const m of missing) {
    if (m.path[0] === 'providers' && m.path[2] === 'api_key') missingEnv[String(m.path[1])] = m.name
    else if (m.path[0] === 'keys') warnings.push(`${path}: keys[${m.path[1]}] is skipped: environment variable ${m.name} is not set`)
    else if (m.path[0] === 'admin_key') warnings.push(`${path}: admin API disabled: environment variable ${m.name} is not set`)
    else throw new ConfigError(`${path}: at ${m.path.join('.')}: environment variable ${m.name} is not set. Fix: export ${m.name}, or write a default as \${${m.name}:-value}.`)
  }

  const pricesPath = resolve(dir, parsed.prices)
  let prices: Record<string, Price> = {}
  try {
    prices = validate(z.record(z.string(), priceSchema), await readYaml(pricesPath), pricesPath)
    files.push(pricesPath)
  } catch (err) {
    if (!(err instanceof ConfigError && /cannot be read/.test(err.message))) throw err
  }

  const models: Record<string, ResolvedModel> = {}
  for (const [alias, m] of Object.entries(parsed.models)) {
    if (!parsed.providers[m.provider]) {
      throw new ConfigError(`${path}: at models.${alias}.provider: provider "${m.provider}" is not defined. Fix: add it under providers: (defined: ${Object.keys(parsed.providers).join(', ') || 'none'}).`)
    }
    const price = m.price ?? prices[m.model] ?? prices[alias] ?? (parsed.providers[m.provider]!.kind === 'llama' ? { input: 0, output: 0 } : undefined)
    if (!price) {
      throw new ConfigError(`${path}: at models.${alias}.price: no price for model "${m.model}". Fix: add price: { input, output } (USD per million tokens) or an entry in ${pricesPath}.`)
    }
    models[alias] = { ...m, price }
  }

  const policies: Record<string, TeamPolicy> = {}
  for (const [team, t] of Object.entries(parsed.teams)) {
    if (!t.policy) {
      policies[team] = teamPolicySchema.parse({})
      continue
    }
    const policyPath = resolve(dir, t.policy)
    policies[team] = loadPolicyFrom(policyPath, interpolateEnv(await readYaml(policyPath, 'write {} for a team without limits'), env).value)
    files.push(policyPath)
  }

  parsed.keys = parsed.keys.filter((k, i) => {
    if (!policies[k.team]) throw new ConfigError(`${path}: at keys.${i}.team: team "${k.team}" is not defined. Fix: add it under teams:.`)
    return Boolean(k.key || k.key_sha256)
  })

  return { ...parsed, file: path, models, policies, missingEnv, files, warnings }
}

/** Validate one team policy document; errors name the file. */
export function loadPolicyFrom(path: string, doc: unknown): TeamPolicy {
  return validate(teamPolicySchema, doc ?? {}, path)
}

/**
 * One YAML file's document. With `emptyFix`, a file holding no document (empty, or only comments) is refused: it
 * is most often one an editor or a deploy is still writing, and a reload that applied it would drop every key
 * (the gateway config) or every budget (a policy) until the next change.
 */
async function readYaml(path: string, emptyFix?: string): Promise<unknown> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch {
    throw new ConfigError(`${path}: cannot be read. Fix: check the path (relative paths resolve from the config file's folder).`)
  }
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (err) {
    throw new ConfigError(`${path}: is not valid YAML: ${(err as Error).message.split('\n')[0]}`)
  }
  if (doc == null && emptyFix) {
    throw new ConfigError(`${path}: is empty (no YAML document; a file still being written?). Fix: ${emptyFix}; write config files whole (a temporary file renamed over the old one).`)
  }
  return doc ?? {}
}

function validate<T extends z.ZodType>(schema: T, value: unknown, file: string): z.infer<T> {
  // reportInput: zod 4 leaves issue.input out otherwise, and fixFor tells "missing" from "wrong type" by it
  const result = schema.safeParse(value, { reportInput: true })
  if (result.success) return result.data
  const lines = result.error.issues.slice(0, 8).map((issue) => `  at ${issue.path.join('.') || '(top level)'}: ${issue.message}. Fix: ${fixFor(issue)}`)
  throw new ConfigError(`${file}: invalid config\n${lines.join('\n')}`)
}

function fixFor(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'unrecognized_keys':
      return `remove or correct ${issue.keys.map((k) => `"${k}"`).join(', ')} (check the spelling against README)`
    case 'invalid_type':
      return issue.input === undefined ? 'this field is required' : `use a value of type ${issue.expected}`
    case 'invalid_union':
      return 'use one of the shapes README documents for this field'
    case 'invalid_value':
      return `use one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`
    case 'too_small':
    case 'too_big':
      return 'use a value within the allowed range'
    case 'invalid_format':
      return `use a valid ${issue.format}`
    default:
      return 'see README for this field'
  }
}
