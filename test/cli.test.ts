import { spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { ADMIN_KEY, TEAM_A_KEY, TEAM_B_KEY, useFakeOpenAIGateway } from './helpers/gateway.js'

const stack = useFakeOpenAIGateway()

/** Run the real CLI in a child process. */
const sluice = (args: string[], env: Record<string, string> = {}) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', ...args], {
      env: { ...process.env, SLUICE_ADMIN_KEY: '', SLUICE_URL: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe']
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })

const chat = async (key: string, content: string) => {
  const res = await fetch(`${stack.gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] })
  })
  await res.text()
  return res.status
}


describe('sluice CLI', () => {
  it('prints a --help that fits on a screen', async () => {
    const r = await sluice(['--help'])
    expect(r.code).toBe(0)
    const lines = r.stdout.trimEnd().split('\n')
    expect(lines.length).toBeLessThanOrEqual(30)
    expect(Math.max(...lines.map((l) => l.length))).toBeLessThanOrEqual(100)
    for (const cmd of ['start', 'check-config', 'keys create', 'spend']) expect(r.stdout).toContain(cmd)
  })

  it('checks a config: ok, and a bad one exits 1 naming the file and the path', async () => {
    const ok = await sluice(['check-config', '-c', stack.gw.file])
    expect(ok.code).toBe(0)
    expect(ok.stdout).toMatch(/: ok \(4 models, 2 teams, 2 keys\)/)
    const bad = join(stack.gw.dir, 'bad.yaml')
    writeFileSync(bad, 'server: { port: "eighty" }\n')
    const r = await sluice(['check-config', '--config', bad])
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('bad.yaml')
    expect(r.stderr).toContain('at server.port')
  })

  it('creates a key through the gateway; the printed key works, list and revoke follow', async () => {
    const made = await sluice(['keys', 'create', '--team', 'a', '--user', 'erin', '--name', 'laptop', '--url', stack.gw.url, '--admin-key', ADMIN_KEY])
    expect(made.code).toBe(0)
    const key = made.stdout.trim()
    expect(key).toMatch(/^sk-sluice-[\w-]{32}$/)
    expect(made.stderr).toMatch(/key [0-9a-f]{12} for team a \(user erin\)/)
    expect(await chat(key, 'hello from the cli key')).toBe(200)

    const id = /key ([0-9a-f]{12})/.exec(made.stderr)![1]!
    const listed = await sluice(['keys', 'list', '--team', 'a'], { SLUICE_URL: stack.gw.url, SLUICE_ADMIN_KEY: ADMIN_KEY })
    expect(listed.code).toBe(0)
    expect(listed.stdout).toMatch(new RegExp(`${id}\\s+a\\s+erin\\s+laptop\\s+\\S+\\s+active`))
    expect(listed.stdout).not.toContain(key)

    const revoked = await sluice(['keys', 'revoke', id, '--url', stack.gw.url, '--admin-key', ADMIN_KEY])
    expect(revoked.code).toBe(0)
    expect(revoked.stdout).toBe(`revoked ${id}\n`)
    expect(await chat(key, 'after revocation')).toBe(401)
  })

  it('reports refusals and missing settings with clear exits', async () => {
    const asTeam = await sluice(['keys', 'create', '--team', 'a', '--url', stack.gw.url, '--admin-key', TEAM_B_KEY])
    expect(asTeam.code).toBe(1)
    expect(asTeam.stderr).toContain('403: Only the admin key may create keys.')
    const noKey = await sluice(['keys', 'create', '--team', 'a', '--url', stack.gw.url])
    expect(noKey.code).toBe(2)
    expect(noKey.stderr).toContain('--admin-key')
    const noTeam = await sluice(['keys', 'create', '--url', stack.gw.url, '--admin-key', ADMIN_KEY])
    expect(noTeam.code).toBe(2)
    const down = await sluice(['spend', '--url', 'http://127.0.0.1:9', '--admin-key', ADMIN_KEY])
    expect(down.code).toBe(1)
    expect(down.stderr).toContain('cannot reach the gateway at http://127.0.0.1:9')
  })

  it('prints spend for a team since 7d, grouped by model', async () => {
    expect(await chat(TEAM_A_KEY, 'count my spend')).toBe(200)
    expect(await chat(TEAM_B_KEY, 'not mine')).toBe(200)
    await stack.gw.gateway.ledger.flush()
    const entries = await stack.gw.gateway.store.queryLedger({ team: 'a' })
    const cost = entries.reduce((s, e) => s + e.cost_usd, 0)

    const r = await sluice(['spend', '--team', 'a', '--since', '7d', '--url', stack.gw.url, '--admin-key', ADMIN_KEY])
    expect(r.code).toBe(0)
    const lines = r.stdout.trim().split('\n')
    expect(lines[0]).toMatch(/^model\s+requests\s+input tok\s+output tok\s+cost USD\s+saved USD$/)
    expect(lines.find((l) => l.startsWith('openai/gpt-4o-mini'))).toBeDefined()
    expect(lines.at(-1)).toMatch(new RegExp(`^total\\s+${new Set(entries.map((e) => e.request_id)).size}\\s+.*${cost.toFixed(6)}\\s+0\\.000000$`))

    const json = await sluice(['spend', '--team', 'a', '--by', 'day', '--json', '--url', stack.gw.url, '--admin-key', ADMIN_KEY])
    expect(JSON.parse(json.stdout).groups[0].key).toBe(new Date().toISOString().slice(0, 10))
    // a team key reads its own spend, not another team's
    const other = await sluice(['spend', '--team', 'a', '--url', stack.gw.url, '--admin-key', TEAM_B_KEY])
    expect(other.code).toBe(1)
    expect(other.stderr).toContain('403')
  })
}, 60_000)
