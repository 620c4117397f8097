import { describe, expect, it } from 'vitest'
import { judgeWorstCase, routeWorstCase, worstCase } from '../src/budget/index.js'
import type { ResolvedModel } from '../src/config/load.js'
import { judgeMessages } from '../src/routing/checks.js'
import { routingPolicySchema } from '../src/routing/schema.js'
import { countPromptTokens } from '../src/tokens.js'
import type { ChatCompletion, ChatRequest } from '../src/types.js'

const model = (name: string, input: number, output: number, extra: Partial<ResolvedModel> = {}): ResolvedModel =>
  ({ provider: 'openai', model: name, type: 'chat', price: { input, output }, ...extra }) as ResolvedModel
const models = { a: model('a-model', 1, 2), b: model('b-model', 3, 4, { max_output_tokens: 50 }), c: model('gpt-4o', 2, 8) }
const req: ChatRequest = { model: 'x', messages: [{ role: 'user', content: 'how are you today?' }], max_tokens: 100 }
const one = (name: keyof typeof models, r: ChatRequest = req) => worstCase({ ...r, model: models[name].model }, models[name])
const prompt = (name: keyof typeof models) => (one(name).promptTokens * models[name].price.input) / 1e6
const routing = (retries: number) => routingPolicySchema.parse({ retry: { retries } })

describe('routeWorstCase', () => {
  it('prices a single target with its own encoding, price and output cap', () => {
    const noCap = { ...req, max_tokens: undefined }
    expect(routeWorstCase(noCap, 'b', { models, stream: false }).usd).toBeCloseTo(one('b', noCap).usd, 12)
    expect(one('b', noCap).outputCap).toBe(50)
    // gpt-4o counts with o200k, the others with cl100k
    expect(routeWorstCase(req, 'c', { models, stream: false }).promptTokens).toBe(countPromptTokens(req, 'o200k_base'))
  })

  it('fallback: the dearest member when errors are not billed; streamed failures add their prompts', () => {
    const node = { fallback: ['b', 'a'] }
    expect(routeWorstCase(req, node, { models, stream: false }).usd).toBeCloseTo(Math.max(one('a').usd, one('b').usd), 12)
    // streamed: b may break before its first chunk (its prompt is billed) and a then answers
    expect(routeWorstCase(req, node, { models, stream: true }).usd).toBeCloseTo(Math.max(one('b').usd, prompt('b') + one('a').usd), 12)
  })

  it('retries: nothing extra non-streamed, each retry a prompt when streamed', () => {
    expect(routeWorstCase(req, 'a', { models, routing: routing(3), stream: false }).usd).toBeCloseTo(one('a').usd, 12)
    expect(routeWorstCase(req, 'a', { models, routing: routing(3), stream: true }).usd).toBeCloseTo(3 * prompt('a') + one('a').usd, 12)
    expect(routeWorstCase(req, 'a', { models, routing: routing(3), stream: true }).calls).toBe(4)
  })

  it('loadbalance: any member may answer after the others failed; conditional: the dearest branch', () => {
    const lb = { loadbalance: [{ route: 'a' }, { route: 'b' }] }
    expect(routeWorstCase(req, lb, { models, stream: true }).usd).toBeCloseTo(Math.max(prompt('a') + one('b').usd, prompt('b') + one('a').usd), 12)
    const cond = { conditional: [{ when: { has_tools: true }, route: 'a' }], default: 'c' }
    expect(routeWorstCase(req, cond, { models, stream: false }).usd).toBeCloseTo(Math.max(one('a').usd, one('c').usd), 12)
  })

  it('cascade: every tier at its own cap, plus the judge, summed', () => {
    const node = routingPolicySchema.parse({ routes: { r: { cascade: [{ route: 'a', max_tokens: 10, checks: { judge: { target: 'c' } } }, { route: 'b' }] } } }).routes.r!
    const tier0 = one('a', { ...req, max_tokens: 10 }).usd
    const judge = judgeWorstCase(req, models.c)
    expect(routeWorstCase(req, node, { models, stream: false }).usd).toBeCloseTo(tier0 + judge + one('b').usd, 12)
    // without a tier cap, every tier but the last takes cascade_defaults.max_tokens (never above the client's)
    const plain = { cascade: [{ route: 'a' }, { route: 'b' }] }
    const noCap = { ...req, max_tokens: undefined }
    expect(routeWorstCase(noCap, plain, { models, routing: routing(0), stream: false }).usd).toBeCloseTo(one('a', { ...noCap, max_tokens: 1024 }).usd + one('b', noCap).usd, 12)
  })

  it('bounds a judge prompt for any answer up to 8000 characters', () => {
    const per = model('gpt-4o-mini', 1e6, 0) // $1 per token: the bound in tokens
    const bound = judgeWorstCase(req, per)
    for (const answer of ['a'.repeat(20_000), '\u{1F600}'.repeat(5000), 'ꙮ'.repeat(8000), Array.from({ length: 8000 }, (_, i) => String.fromCharCode(0x4e00 + ((i * 7919) % 20000))).join('')]) {
      const body = { choices: [{ index: 0, message: { role: 'assistant', content: answer }, finish_reason: 'stop' }] } as unknown as ChatCompletion
      expect(countPromptTokens({ messages: judgeMessages(req, body) }, 'o200k_base')).toBeLessThanOrEqual(bound)
    }
  })
})
