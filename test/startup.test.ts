/**
 * What `sluice start` says about itself: the address it is really bound to.
 */
import { afterEach, describe, expect, it, vi } from 'vitest'
import { spawnGateway, writeGatewayConfig, type GatewayProcess } from './helpers/process.js'

let proc: GatewayProcess | undefined
afterEach(async () => {
  await proc?.stop()
  proc = undefined
  vi.unstubAllEnvs()
  vi.resetModules()
})

describe('sluice start', () => {
  it('logs the bound address: 0.0.0.0 when it listens on every interface, not 127.0.0.1', async () => {
    const { file } = writeGatewayConfig({ config: { server: { port: 0, host: '0.0.0.0' } } })
    proc = await spawnGateway(file)
    await proc.waitForLog(/sluice listening on/)
    expect(proc.stdout()).toContain(`sluice listening on http://0.0.0.0:${proc.port} (store: memory)`)
  }, 30_000)

  it('logs the loopback address when bound to loopback only', async () => {
    const { file } = writeGatewayConfig({ config: { server: { port: 0, host: '127.0.0.1' } } })
    proc = await spawnGateway(file)
    await proc.waitForLog(/sluice listening on/)
    expect(proc.stdout()).toContain(`sluice listening on http://127.0.0.1:${proc.port} (store: memory)`)
  }, 30_000)
})

describe('test/helpers/redis.ts under CI', () => {
  it('treats any non-empty CI other than false/0 as CI', async () => {
    for (const [value, ci] of [['true', true], ['1', true], ['yes', true], ['github-actions', true], ['false', false], ['0', false], ['', false]] as const) {
      vi.stubEnv('CI', value)
      vi.resetModules()
      const { underCI } = await import('./helpers/redis.js')
      expect(underCI, `CI=${JSON.stringify(value)}`).toBe(ci)
    }
  })
})
