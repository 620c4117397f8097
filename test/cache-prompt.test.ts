import { describe, expect, it } from 'vitest'
import { MAX_BREAKPOINTS, placeCacheBreakpoints, providerCacheSavings, type AnthropicMessagesBody } from '../src/cache/prompt-caching.js'
import { cachePolicySchema } from '../src/cache/schema.js'

const policy = cachePolicySchema.parse({}).provider
const long = (label: string) => `${label}: ` + 'lorem ipsum dolor sit amet '.repeat(200)
const tools = [
  { name: 'search', description: long('search the docs'), input_schema: { type: 'object', properties: {} } },
  { name: 'fetch', description: 'fetch a url', input_schema: { type: 'object', properties: {} } }
]

function marks(body: AnthropicMessagesBody): string[] {
  const out: string[] = []
  body.tools?.forEach((t, i) => t.cache_control && out.push(`tools[${i}]`))
  if (Array.isArray(body.system)) body.system.forEach((b, i) => b.cache_control && out.push(`system[${i}]`))
  body.messages.forEach((m, i) => Array.isArray(m.content) && m.content.forEach((b, j) => b.cache_control && out.push(`messages[${i}][${j}]`)))
  return out
}

/** The body as the provider hashes it: markers removed. */
function strip(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (k, v) => (k === 'cache_control' ? undefined : v)))
}

function conversation(turns: number) {
  const messages: AnthropicMessagesBody['messages'] = []
  for (let t = 0; t < turns; t++) {
    messages.push({ role: 'user', content: t === 0 ? long('question') : `follow-up ${t}` })
    if (t < turns - 1) messages.push({ role: 'assistant', content: `answer ${t} ` + 'details '.repeat(50) })
  }
  return { model: 'claude', max_tokens: 100, system: long('You are a support agent'), tools, messages }
}

describe('placeCacheBreakpoints', () => {
  it('marks the final message, system prompt, previous turn and tools: 4 at most', () => {
    const body = placeCacheBreakpoints(conversation(3), policy)
    expect(marks(body)).toEqual(['tools[1]', 'system[0]', 'messages[2][0]', 'messages[4][0]'])
    expect(body.system).toEqual([{ type: 'text', text: long('You are a support agent'), cache_control: { type: 'ephemeral' } }])
  })

  it('does not change its input', () => {
    const input = conversation(2)
    const before = JSON.stringify(input)
    placeCacheBreakpoints(input, policy)
    expect(JSON.stringify(input)).toBe(before)
  })

  it('keeps the client breakpoints and never goes past 4', () => {
    const input = conversation(3)
    const withClient = {
      ...input,
      messages: input.messages.map((m, i) =>
        i === 0 ? { ...m, content: [{ type: 'text', text: m.content as string, cache_control: { type: 'ephemeral' as const } }] } : m
      )
    }
    const body = placeCacheBreakpoints(withClient, policy)
    expect(marks(body)).toContain('messages[0][0]')
    expect(marks(body)).toHaveLength(MAX_BREAKPOINTS)
    // highest priorities first: final message, system, previous turn; tools lose
    expect(marks(body)).toEqual(['system[0]', 'messages[0][0]', 'messages[2][0]', 'messages[4][0]'])
  })

  it('adds nothing when the client already set 4', () => {
    const input = conversation(1)
    const cc = { type: 'ephemeral' as const }
    const full: AnthropicMessagesBody = {
      ...input,
      tools: tools.map((t) => ({ ...t, cache_control: cc })),
      system: [{ type: 'text', text: 'a', cache_control: cc }, { type: 'text', text: 'b', cache_control: cc }],
      messages: [{ role: 'user', content: [{ type: 'text', text: long('q') }] }]
    }
    expect(marks(placeCacheBreakpoints(full, policy))).toHaveLength(4)
  })

  it('skips prefixes shorter than min_prefix_tokens, and then sends the body as it was', () => {
    const input = { model: 'claude', max_tokens: 10, system: 'be brief', messages: [{ role: 'user' as const, content: 'hi' }] }
    const body = placeCacheBreakpoints(input, policy)
    expect(marks(body)).toEqual([])
    // nothing cached, so no reason to rewrite string contents into blocks
    expect(body).toBe(input)
    expect(body.messages[0]!.content).toBe('hi')
  })

  it('follows the policy switches', () => {
    const off = cachePolicySchema.parse({ provider: { enabled: false } }).provider
    const input = conversation(2)
    expect(placeCacheBreakpoints(input, off)).toBe(input)
    const systemOnly = cachePolicySchema.parse({ provider: { tools: false, conversation: false } }).provider
    expect(marks(placeCacheBreakpoints(input, systemOnly))).toEqual(['system[0]'])
  })

  it('never marks thinking blocks', () => {
    const body = placeCacheBreakpoints(
      {
        model: 'claude',
        max_tokens: 10,
        system: long('sys'),
        messages: [
          { role: 'user', content: long('q') },
          { role: 'assistant', content: [{ type: 'text', text: 'ok' }, { type: 'thinking', thinking: 'hmm', signature: 's' }] }
        ]
      },
      cachePolicySchema.parse({ provider: { system: false } }).provider
    )
    expect(marks(body)).toEqual(['messages[0][0]', 'messages[1][0]'])
  })

  it('uses the 1h ttl before a later client 1h breakpoint', () => {
    const input = conversation(2)
    input.messages[2] = { role: 'user', content: [{ type: 'text', text: 'follow-up', cache_control: { type: 'ephemeral', ttl: '1h' } } as never] }
    const body = placeCacheBreakpoints(input, policy)
    expect((body.system as unknown as { cache_control?: unknown }[])[0]!.cache_control).toEqual({ type: 'ephemeral', ttl: '1h' })
  })

  it('keeps the prefix bytes stable from one turn to the next', () => {
    for (let turn = 1; turn < 6; turn++) {
      const now = placeCacheBreakpoints(conversation(turn), policy)
      const next = placeCacheBreakpoints(conversation(turn + 1), policy)
      // Everything the provider cached at this turn (tools, system, all messages) serialises identically next turn.
      expect(JSON.stringify(strip(next.tools))).toBe(JSON.stringify(strip(now.tools)))
      expect(JSON.stringify(strip(next.system))).toBe(JSON.stringify(strip(now.system)))
      expect(JSON.stringify(strip(next.messages.slice(0, now.messages.length)))).toBe(JSON.stringify(strip(now.messages)))
      // and the next turn places a breakpoint exactly where this turn wrote the whole prompt
      const last = now.messages.length - 1
      expect(marks(next)).toContain(`messages[${last}][0]`)
    }
  })
})

describe('providerCacheSavings', () => {
  it('prices cached reads at the cached rate and cache writes at their premium', () => {
    const s = providerCacheSavings(
      { prompt_tokens: 3000, completion_tokens: 10, total_tokens: 3010, prompt_tokens_details: { cached_tokens: 2000 }, cache_creation_input_tokens: 500 },
      { input: 3, output: 15, cached_input: 0.3, cache_write: 3.75 }
    )
    expect(s.cachedTokens).toBe(2000)
    expect(s.writeTokens).toBe(500)
    expect(s.readSavedUsd).toBeCloseTo((2000 * 2.7) / 1e6, 12)
    expect(s.writeExtraUsd).toBeCloseTo((500 * 0.75) / 1e6, 12)
    expect(s.netSavedUsd).toBeCloseTo((2000 * 2.7 - 500 * 0.75) / 1e6, 12)
  })

  it('saves nothing without a price or a cached rate', () => {
    const usage = { prompt_tokens: 100, completion_tokens: 1, total_tokens: 101, prompt_tokens_details: { cached_tokens: 64 } }
    expect(providerCacheSavings(usage, undefined).netSavedUsd).toBe(0)
    expect(providerCacheSavings(usage, { input: 1, output: 2 }).netSavedUsd).toBe(0)
    expect(providerCacheSavings(usage, { input: 1, output: 2 }).cachedTokens).toBe(64)
  })
})
