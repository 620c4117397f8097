/**
 * watchConfig (src/config/watch.ts) against a replace that lands while a reload is under way: after the files
 * were read and before the paths are watched again. The watcher that fired was on the old inode, and the new
 * file is not watched yet, so no event ever comes for that replace; the reload must notice it by itself.
 */
import { mkdtempSync, renameSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { loadConfig, type GatewayConfig } from '../src/config/load.js'
import { watchConfig } from '../src/config/watch.js'
import { writeConfigFiles } from './helpers/gateway.js'
import { waitFor } from './helpers/wait.js'

const policy = (limit: number) => stringify({ budgets: [{ scope: 'team', limit_usd: limit, window: 'day' }] })
const limitOf = (config: GatewayConfig) => config.policies.a?.budgets[0]?.limit_usd

function replaceAtomically(file: string, text: string) {
  writeFileSync(`${file}.tmp`, text)
  renameSync(`${file}.tmp`, file)
}

/** A gateway config whose team `a` has a $5 budget, in a fresh folder; the policy file is `a.yaml`. */
function writeWatchedConfig() {
  const { file, dir } = writeConfigFiles(
    mkdtempSync(join(tmpdir(), 'sluice-watch-')),
    { server: { port: 0 }, store: { kind: 'memory' }, providers: {}, models: {} },
    { a: { budgets: [{ scope: 'team', limit_usd: 5, window: 'day' }] } }
  )
  return { file, policyFile: join(dir, 'a.yaml') }
}

let stop: (() => void) | undefined
afterEach(() => stop?.())

describe('watchConfig', () => {
  it('applies a replace that lands between a reload reading the files and watching them again', async () => {
    const { file, policyFile } = writeWatchedConfig()
    const applied: (number | undefined)[] = []
    stop = watchConfig(
      await loadConfig(file, {}),
      (next) => {
        applied.push(limitOf(next))
        // the first reload has read the files; this replace comes before it watches the paths again
        if (applied.length === 1) replaceAtomically(policyFile, policy(9))
      },
      () => {},
      { debounceMs: 20, env: {} }
    )
    replaceAtomically(policyFile, policy(7))
    expect(await waitFor(async () => applied.at(-1) === 9, 3000, 20), `applied: ${applied.join(', ')}`).toBe(true)
    expect(applied[0]).toBe(7)
  })

  it('survives a policy file that disappears (reported, the running config kept) and applies it when it is back', async () => {
    const { file, policyFile } = writeWatchedConfig()
    const applied: (number | undefined)[] = []
    const reports: (string | undefined)[] = []
    stop = watchConfig(await loadConfig(file, {}), (next) => applied.push(limitOf(next)), (e) => reports.push(e), { debounceMs: 20, env: {} })
    unlinkSync(policyFile)
    expect(await waitFor(async () => reports.some((r) => r?.includes('a.yaml')), 3000, 20), `reports: ${reports.join(' | ')}`).toBe(true)
    expect(applied).toEqual([])
    // a missing file cannot be watched: the watcher looks for it every second and reloads once it is back
    writeFileSync(policyFile, policy(13))
    expect(await waitFor(async () => applied.at(-1) === 13, 4000, 20), `applied: ${applied.join(', ')}`).toBe(true)
  })
})
