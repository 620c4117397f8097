import { existsSync, mkdtempSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { FakeOpenAI } from './fakes/openai.js'
import { ADMIN_KEY, TEAM_A_KEY, TEAM_B_KEY, type TestGateway } from './helpers/gateway.js'
import { startStack, type Stack } from './helpers/stack.js'

const CHROMIUM = process.env.SLUICE_CHROMIUM ?? '/usr/bin/chromium'
const haveChromium = existsSync(CHROMIUM)
if (!haveChromium) console.warn(`dashboard test skipped: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set SLUICE_CHROMIUM)`)

let stack: Stack
let fake: FakeOpenAI
let gw: TestGateway

const chat = async (key: string, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
  const res = await fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o-mini', ...body })
  })
  await res.text()
  return res.status
}

describe('GET /dashboard', () => {
  beforeAll(async () => {
    ;({ fake, gw } = stack = await startStack({
      policies: {
        a: {
          guardrails: { input: { pii: { action: 'redact' } } },
          budgets: [{ scope: 'team', window: 'day', limit_usd: 2 }],
          routing: { routes: { smart: { cascade: [{ route: 'gpt-4o-mini', checks: { min_mean_logprob: -1 } }, { route: 'gpt-4o' }] } } }
        },
        b: { budgets: [{ scope: 'team', window: 'month', limit_usd: 5 }], cache: {} }
      }
    }))
    // traffic: two teams, sessions, a redaction, a cascade escalation, a provider prompt-cache read and an exact-cache hit
    fake.script = (body) => {
      const text = JSON.stringify(body.messages)
      if (text.includes('hard question')) return { content: 'unsure answer', logprob: body.model === 'gpt-4o-mini' ? -3 : -0.01 }
      if (text.includes('shared prefix')) return { content: 'ok', promptTokens: 3000, cachedTokens: 2500 }
      return undefined
    }
    expect(await chat(TEAM_A_KEY, { messages: [{ role: 'user', content: 'plan the trip' }] }, { 'x-sluice-session': 'trip-planner-42' })).toBe(200)
    expect(await chat(TEAM_A_KEY, { model: 'gpt-4o', messages: [{ role: 'user', content: 'write a long essay about rivers' }] }, { 'x-sluice-session': 'essay-7' })).toBe(200)
    expect(await chat(TEAM_A_KEY, { messages: [{ role: 'user', content: 'mail ada@example.com the plan' }] }, { 'x-sluice-session': 'trip-planner-42' })).toBe(200)
    expect(await chat(TEAM_A_KEY, { model: 'smart', messages: [{ role: 'user', content: 'hard question about tides' }] }, { 'x-sluice-session': 'tides-1' })).toBe(200)
    expect(await chat(TEAM_B_KEY, { messages: [{ role: 'user', content: 'shared prefix and a question' }] }, { 'x-sluice-session': 'bravo-session' })).toBe(200)
    // the same prompt twice: the second is answered by the exact cache
    expect(await chat(TEAM_B_KEY, { messages: [{ role: 'user', content: 'what is the capital of France?' }] }, { 'x-sluice-session': 'bravo-session' })).toBe(200)
    expect(await chat(TEAM_B_KEY, { messages: [{ role: 'user', content: 'what is the capital of France?' }] }, { 'x-sluice-session': 'bravo-session' })).toBe(200)
    await gw.gateway.ledger.flush()
  }, 30_000)
  afterAll(() => stack?.close())

  it('serves a self-contained page with a strict content security policy', async () => {
    const res = await fetch(`${gw.url}/dashboard`)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-security-policy')).toContain("script-src 'self'")
    const html = await res.text()
    expect(html).not.toMatch(/https?:\/\//)
    const js = await (await fetch(`${gw.url}/dashboard/app.js`)).text()
    expect(js).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/)
    expect(js).not.toContain('innerHTML')
  })

  it.skipIf(!haveChromium)('shows spend, sessions, cache, routing, guardrails and budgets in headless Chromium', async () => {
    const { chromium } = await import('playwright-core')
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run']
    })
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } })
      const problems: string[] = []
      page.on('pageerror', (e) => problems.push(String(e)))
      page.on('console', (m) => {
        // the wrong key below is answered 401 on purpose
        if (m.type() === 'error' && !m.text().includes('status of 401')) problems.push(m.text())
      })
      const outside: string[] = []
      page.on('request', (r) => {
        if (!r.url().startsWith(gw.url)) outside.push(r.url())
      })
      await page.goto(`${gw.url}/dashboard`)
      await expect.poll(() => page.textContent('#status')).toContain('Enter the admin key')

      // a wrong key is refused and shows nothing
      await page.fill('#key', 'sk-wrong-key-123456')
      await page.click('button[type=submit]')
      await expect.poll(() => page.textContent('#status')).toContain('not accepted')
      expect(await page.isHidden('#main')).toBe(true)

      await page.fill('#key', ADMIN_KEY)
      await page.click('button[type=submit]')
      await expect.poll(() => page.textContent('#status')).toContain('Admin view')

      const overview = await (await fetch(`${gw.url}/admin/overview?since=24h`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } })).json()
      expect(await page.textContent('#total-requests')).toBe(String(overview.totals.requests))
      expect(await page.textContent('#escalated')).toBe('1')
      // spend over time: one bar segment per team and model with spend, legends named
      expect(await page.locator('#chart-team rect').count()).toBeGreaterThanOrEqual(2)
      const legend = await page.locator('#legend-team li').allTextContents()
      expect(legend.map((l) => l.split(' ')[0]).sort()).toEqual(['a', 'b'])
      expect(legend.every((l) => /^\w+ \$0\.\d+$/.test(l))).toBe(true)
      expect(await page.textContent('#legend-model')).toContain('openai/gpt-4o')
      // top sessions by cost: the gpt-4o essay costs most
      const sessions = await page.locator('#sessions tbody tr td:first-child').allTextContents()
      expect(sessions).toEqual(expect.arrayContaining(['essay-7', 'trip-planner-42', 'tides-1', 'bravo-session']))
      expect(sessions[0]).toBe(overview.top_sessions[0].session)
      // cache: one exact hit of seven requests, saving what the first call cost; the provider prompt cache read 2,500 tokens
      expect(overview.cache.hit_rate).toBeCloseTo(1 / 7, 4)
      expect(await page.textContent('#hit-rate')).toBe('14.3%')
      const missCost = (await gw.gateway.store.queryLedger({ team: 'b' })).filter((e) => e.status === 'ok' && e.session === 'bravo-session').at(-1)!.cost_usd
      expect(missCost).toBeGreaterThan(0)
      const cacheRows = await page.locator('#cache tbody tr').evaluateAll((trs) => trs.map((tr) => Array.from(tr.children, (td) => td.textContent)))
      const usd = (n: number) => '$' + n.toFixed(6)
      expect(cacheRows).toContainEqual(['exact', '1 hits', usd(missCost)])
      expect(cacheRows).toContainEqual(['semantic', '0 hits', '$0'])
      // gpt-4o-mini: 2500 cached tokens at $0.15 − $0.075 per million
      expect(cacheRows).toContainEqual(['provider prompt cache', '2500 tokens', usd((2500 * 0.075) / 1e6)])
      expect(await page.textContent('#total-saved')).toBe(usd(overview.totals.saved_usd))
      expect(overview.totals.saved_usd).toBeCloseTo(missCost + (2500 * 0.075) / 1e6, 9)
      // routing split and the escalation note
      expect(await page.textContent('#routing')).toContain('openai/gpt-4o-mini')
      expect(await page.textContent('#routing-note')).toContain('1 escalated by the cascade')
      // guardrails: the redacted e-mail, never the address itself
      expect(await page.textContent('#guardrails')).toContain('pii.email')
      expect(await page.content()).not.toContain('ada@example.com')
      // budgets: team a's day budget and team b's month budget
      const budgets = await page.textContent('#budgets')
      expect(budgets).toMatch(/a\s*team\s*a\s*day/)
      expect(budgets).toMatch(/b\s*team\s*b\s*month/)

      // the committed screenshot is refreshed on request only, so a test run leaves the tree clean
      const shot = process.env.SLUICE_UPDATE_SCREENSHOT ? 'docs/dashboard.png' : join(mkdtempSync(join(tmpdir(), 'sluice-dash-')), 'dashboard.png')
      await page.screenshot({ path: shot, fullPage: true })
      expect(statSync(shot).size).toBeGreaterThan(10_000)

      // a team key sees only its own team
      await page.click('#forget')
      await page.fill('#key', TEAM_B_KEY)
      await page.click('button[type=submit]')
      await expect.poll(() => page.textContent('#status')).toContain('Team view: b')
      expect(await page.locator('#sessions tbody tr td:first-child').allTextContents()).toEqual(['bravo-session'])
      expect((await page.locator('#legend-team li').allTextContents()).map((l) => l.split(' ')[0])).toEqual(['b'])
      expect(await page.textContent('#budgets')).not.toMatch(/a\s*team\s*a/)

      expect(problems).toEqual([])
      expect(outside).toEqual([])
    } finally {
      await browser.close()
    }
  }, 60_000)
})
