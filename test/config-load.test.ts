/**
 * Config errors name the file, the path and the right fix: a wrong type is not reported as a missing field.
 */
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { loadConfig } from '../src/config/load.js'

function write(config: Record<string, unknown>, policies: Record<string, unknown> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-config-'))
  for (const [name, doc] of Object.entries(policies)) writeFileSync(join(dir, name), stringify(doc))
  const file = join(dir, 'gateway.yaml')
  writeFileSync(file, stringify({ prices: join(process.cwd(), 'config/prices.yaml'), providers: { openai: { kind: 'openai', base_url: 'http://127.0.0.1:9/v1', api_key: 'sk-x' } }, ...config }))
  return { dir, file }
}

const errorOf = (file: string) => loadConfig(file, {}).then(() => '', (err: Error) => err.message)

describe('config error messages', () => {
  it('a wrong type says which type to use, with file and path', async () => {
    const { file } = write({ models: { m: { provider: 'openai', model: 'gpt-4o-mini', price: { input: 'cheap', output: 1 } } } })
    const message = await errorOf(file)
    expect(message).toContain(`${file}: invalid config`)
    expect(message).toMatch(/at models\.m\.price\.input: Invalid input: expected number, received string\. Fix: use a value of type number/)
    expect(message).not.toMatch(/required/)
  })

  it('a missing field says it is required', async () => {
    const { file } = write({ models: { m: { provider: 'openai', model: 'gpt-4o-mini', price: { output: 1 } } } })
    expect(await errorOf(file)).toMatch(/at models\.m\.price\.input: .*Fix: this field is required/)
  })

  it('a wrong type in a policy file names that file', async () => {
    const { dir, file } = write({ models: {}, teams: { a: { policy: 'a.yaml' } } }, { 'a.yaml': { budgets: [{ scope: 'team', limit_usd: 'ten' }] } })
    const message = await errorOf(file)
    expect(message).toContain(`${join(dir, 'a.yaml')}: invalid config`)
    expect(message).toMatch(/at budgets\.0\.limit_usd: .*Fix: use a value of type number/)
  })
})

describe('empty config files', () => {
  it('refuses a gateway config or policy file with no YAML document (one still being written), and takes {} as an empty policy', async () => {
    const { dir, file } = write({ models: {}, teams: { a: { policy: 'a.yaml' } } }, { 'a.yaml': {} })
    expect((await loadConfig(file, {})).policies.a).toBeDefined()

    writeFileSync(join(dir, 'a.yaml'), '# budgets come later\n')
    expect(await errorOf(file)).toBe(`${join(dir, 'a.yaml')}: is empty (no YAML document; a file still being written?). Fix: write {} for a team without limits; write config files whole (a temporary file renamed over the old one).`)

    writeFileSync(file, '')
    expect(await errorOf(file)).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: is empty .*Fix: write the gateway config`))
  })
})

describe('config values that must be URLs', () => {
  it('webhooks.budget_alert_url must be an http(s) URL', async () => {
    for (const bad of ['hooks.example/sluice', 'ftp://hooks.example/x', 'file:///etc/passwd']) {
      const { file } = write({ webhooks: { budget_alert_url: bad } })
      expect(await errorOf(file), bad).toMatch(/at webhooks\.budget_alert_url: an http\(s\) URL such as https:\/\/hooks\.example\/sluice\. Fix: use a valid url/)
    }
    const { file } = write({ webhooks: { budget_alert_url: 'https://hooks.example/sluice' } })
    expect((await loadConfig(file, {})).webhooks.budget_alert_url).toBe('https://hooks.example/sluice')
  })
})
