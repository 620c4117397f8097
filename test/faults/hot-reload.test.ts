/**
 * Hot reload through the file watcher of a real `sluice start`: an edit in place and an atomic replace (write a
 * temp file, rename it over the policy, as editors and config-management tools do) are both applied without a
 * restart, and a broken replacement keeps the policy that was running.
 */
import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { startFakeOpenAI, type FakeOpenAI } from '../fakes/openai.js'
import { ADMIN_KEY } from '../helpers/gateway.js'
import { spawnGateway, writeGatewayConfig, type GatewayProcess } from '../helpers/process.js'
import { waitFor } from '../helpers/wait.js'

let fake: FakeOpenAI
let gw: GatewayProcess
let dir: string

const policy = (limit: number) => stringify({ budgets: [{ scope: 'team', limit_usd: limit, window: 'day' }] })

beforeAll(async () => {
  fake = await startFakeOpenAI()
  const written = writeGatewayConfig({ openaiUrl: fake.url, openaiKey: fake.apiKey, policies: { a: { budgets: [{ scope: 'team', limit_usd: 5, window: 'day' }] } } })
  dir = written.dir
  gw = await spawnGateway(written.file)
})
afterAll(async () => {
  await gw?.stop()
  await fake?.close()
})

async function teamLimit(): Promise<number | undefined> {
  const res = await fetch(`${gw.url}/admin/budgets?team=a`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })
  const body = (await res.json()) as { data: { limit_usd: number }[] }
  return body.data[0]?.limit_usd
}

/** Write a temp file next to the target and rename it over the target: the target gets a new inode. */
function replaceAtomically(file: string, text: string) {
  const tmp = `${file}.tmp-${process.pid}`
  writeFileSync(tmp, text)
  renameSync(tmp, file)
}

describe('hot reload through the file watcher', () => {
  it('applies an edit in place and atomic replaces, again and again; a broken replacement keeps the old policy', async () => {
    const file = join(dir, 'a.yaml')
    expect(await teamLimit()).toBe(5)

    writeFileSync(file, policy(7))
    expect(await waitFor(async () => (await teamLimit()) === 7, 5000, 50)).toBe(true)

    // several replaces in a row: each must be seen, also after the watched inode went away
    for (const limit of [11, 13, 17]) {
      replaceAtomically(file, policy(limit))
      expect(await waitFor(async () => (await teamLimit()) === limit, 5000, 50), `limit ${limit}`).toBe(true)
    }

    // a broken replacement: rejected, the running policy stays, /readyz says so
    replaceAtomically(file, stringify({ budgets: [{ scope: 'team', limit_usd: 'lots', window: 'day' }] }))
    expect(await waitFor(async () => ((await (await fetch(`${gw.url}/readyz`)).json()) as { checks: { config: string } }).checks.config.includes('a.yaml'), 5000, 50)).toBe(true)
    expect(await teamLimit()).toBe(17)

    // and a good one after it is applied and clears the failure
    replaceAtomically(file, policy(19))
    expect(await waitFor(async () => (await teamLimit()) === 19, 5000, 50)).toBe(true)
    expect(((await (await fetch(`${gw.url}/readyz`)).json()) as { checks: { config: string } }).checks.config).toBe('ok')

    // a burst of replaces spread over the debounce and the reload itself: the last one wins
    for (let i = 0; i < 12; i++) {
      replaceAtomically(file, policy(100 + i))
      await new Promise((r) => setTimeout(r, 150 + i * 4))
    }
    expect(await waitFor(async () => (await teamLimit()) === 111, 5000, 50)).toBe(true)
  }, 40_000)
})
