/**
 * Guardrail actions outlive the process and reach every instance: each request's ledger entries (provider
 * attempts and cache hits) carry its `rule:action` list, output-layer actions on the answer included, and each
 * action is one structured log line through the gateway logger, never with the matched text.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { FakeOpenAI } from './fakes/openai.js'
import { TEAM_A_KEY, TEAM_B_KEY, type TestGateway } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'

const EMAIL = 'jane.doe@example.com'
const TOKEN = 'ghp_' + 'a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8'

let stack: Stack
let fake: FakeOpenAI
let gw: TestGateway
const logs: { level: string; msg: string; fields?: Record<string, unknown> }[] = []

beforeAll(async () => {
  ;({ fake, gw } = stack = await startStack({
    policies: {
      a: { guardrails: { input: { pii: { action: 'redact', reversible: false } }, output: { secrets: {} } } },
      b: { guardrails: { output: { secrets: {} } }, cache: { exact: { enabled: true } } }
    },
    server: { log: (level, msg, fields) => void logs.push({ level, msg, fields }) }
  }))
})
afterAll(() => stack?.close())
beforeEach(() => {
  fake.script = undefined
  logs.length = 0
})

const chat = (key: string, session: string, content: string, stream = false) =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-sluice-session': session },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], stream })
  }).then(async (res) => ({ status: res.status, text: await res.text(), id: res.headers.get('x-sluice-request-id')! }))

async function entriesOf(session: string, team = 'a') {
  await gw.gateway.ledger.flush()
  return gw.gateway.store.queryLedger({ team, session })
}

describe('guardrail actions in the ledger and the log', () => {
  for (const stream of [false, true]) {
    it(`${stream ? 'stream' : 'JSON'}: the entry lists input and output actions as rule:action`, async () => {
      fake.script = () => ({ content: `the token is ${TOKEN}, keep it` })
      const session = `gl-${stream ? 's' : 'j'}-${Date.now()}`
      const r = await chat(TEAM_A_KEY, session, `mail ${EMAIL} the token`, stream)
      expect(r.status).toBe(200)
      expect(r.text).not.toContain(TOKEN)
      const entries = await entriesOf(session)
      expect(entries).toHaveLength(1)
      expect(entries[0]!.status).toBe('ok')
      // the output mask happened after the provider call settled, and is still in the entry
      expect(entries[0]!.guardrails?.sort()).toEqual(['pii.email:redact', 'secret.github:mask'])

      // one structured log line per action, with the request id, and no matched text anywhere in the log
      const lines = logs.filter((l) => l.fields?.event === 'guardrail')
      expect(lines.map((l) => `${l.fields!.rule}:${l.fields!.action}`).sort()).toEqual(['pii.email:redact', 'secret.github:mask'])
      for (const l of lines) expect(l.fields).toMatchObject({ request_id: r.id, team: 'a', session, count: 1 })
      const all = JSON.stringify(logs)
      expect(all).not.toContain(EMAIL)
      expect(all).not.toContain(TOKEN)
    })
  }

  it('a request without guardrail actions has no guardrails field', async () => {
    const session = `gl-none-${Date.now()}`
    expect((await chat(TEAM_A_KEY, session, 'nothing to see')).status).toBe(200)
    const [entry] = await entriesOf(session)
    expect(entry!.guardrails).toBeUndefined()
    expect(logs.filter((l) => l.fields?.event === 'guardrail')).toEqual([])
  })

  it('a cache hit entry carries the actions taken on the cached answer', async () => {
    fake.script = () => ({ content: `cached token ${TOKEN}` })
    const prompt = `cache me ${Date.now()}`
    const first = `gl-miss-${Date.now()}`
    expect((await chat(TEAM_B_KEY, first, prompt)).status).toBe(200)
    const second = `gl-hit-${Date.now()}`
    const hit = await chat(TEAM_B_KEY, second, prompt)
    expect(hit.text).not.toContain(TOKEN)
    const [entry] = await entriesOf(second, 'b')
    expect(entry).toMatchObject({ status: 'cache_hit', guardrails: ['secret.github:mask'] })
    // later hits reuse the answer's remembered scan: masked, and counted, every time
    for (const n of [3, 4]) {
      const session = `gl-hit${n}-${Date.now()}`
      const again = await chat(TEAM_B_KEY, session, prompt)
      expect(again.text).toContain('[GITHUB_TOKEN]')
      expect(again.text).not.toContain(TOKEN)
      expect((await entriesOf(session, 'b'))[0]).toMatchObject({ status: 'cache_hit', guardrails: ['secret.github:mask'] })
    }
  })
})
