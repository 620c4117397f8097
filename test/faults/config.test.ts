/**
 * Config hot reload on a real `sluice start` process: a broken edit keeps the running config (requests keep
 * being served with it), `/readyz` names the failure and `sluice_config_reloads_total{result="error"}` counts
 * it; a good edit is applied and clears the failure.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, stringify } from 'yaml'
import { startFakeOpenAI, type FakeOpenAI } from '../fakes/openai.js'
import { TEAM_A_KEY } from '../helpers/gateway.js'
import { spawnGateway, writeGatewayConfig, type GatewayProcess } from '../helpers/process.js'
import { waitFor } from '../helpers/wait.js'

let fake: FakeOpenAI
let gw: GatewayProcess
let dir: string
let file: string

beforeAll(async () => {
  fake = await startFakeOpenAI()
  const written = writeGatewayConfig({ openaiUrl: fake.url, openaiKey: fake.apiKey })
  dir = written.dir
  file = written.file
  gw = await spawnGateway(file)
})
afterAll(async () => {
  await gw?.stop()
  await fake?.close()
})

const chat = (model = 'gpt-4o-mini') =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEAM_A_KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'still here?' }] }),
    signal: AbortSignal.timeout(5000)
  })

async function reloads(result: 'ok' | 'error'): Promise<number> {
  const text = await (await fetch(`${gw.url}/metrics`)).text()
  const m = text.match(new RegExp(`^sluice_config_reloads_total\\{result="${result}"\\} (\\d+)`, 'm'))
  return m ? Number(m[1]) : 0
}

describe('hot reload of a broken config', () => {
  it('keeps the running config, and /readyz and the metric show the failed reload', async () => {
    const good = readFileSync(file, 'utf8')
    expect((await chat()).status).toBe(200)

    // syntax error in the gateway config
    writeFileSync(file, good + '\nmodels: [unclosed\n')
    expect(await waitFor(async () => (await reloads('error')) >= 1, 5000, 100)).toBe(true)
    const ready = await fetch(`${gw.url}/readyz`)
    const body = await ready.json()
    expect(body.checks.config).toMatch(/^running the previous config; last reload failed: .*gateway\.yaml/)
    expect(gw.stderr()).toMatch(/"level":"error","msg":"config reload rejected, keeping the running config/)
    // the old config still serves
    expect((await chat()).status).toBe(200)

    // restore it, then break a policy file with valid YAML but an invalid value: also rejected, still serving
    writeFileSync(file, good)
    expect(await waitFor(async () => (await fetch(`${gw.url}/readyz`).then((r) => r.json())).checks.config === 'ok', 5000, 100)).toBe(true)
    const before = await reloads('error')
    writeFileSync(join(dir, 'a.yaml'), stringify({ budgets: [{ scope: 'galaxy', limit_usd: -1 }] }))
    expect(await waitFor(async () => (await reloads('error')) > before, 5000, 100)).toBe(true)
    expect((await (await fetch(`${gw.url}/readyz`)).json()).checks.config).toMatch(/a\.yaml/)
    expect((await chat()).status).toBe(200)

    // fix both, and add a model: applied, failure cleared
    writeFileSync(join(dir, 'a.yaml'), stringify({}))
    const config = parse(good)
    config.models['gpt-4o-mini-2'] = { provider: 'openai', model: 'gpt-4o-mini' }
    const okBefore = await reloads('ok')
    writeFileSync(file, stringify(config))
    expect(await waitFor(async () => (await fetch(`${gw.url}/readyz`).then((r) => r.json())).checks.config === 'ok', 5000, 100)).toBe(true)
    expect(await reloads('ok')).toBeGreaterThan(okBefore)
    // the two files may be applied by one reload or two (the policy's alone first): wait for the new model
    expect(await waitFor(async () => (await chat('gpt-4o-mini-2')).status === 200, 5000, 100)).toBe(true)
    expect((await chat()).status).toBe(200)
  }, 30_000)
})
