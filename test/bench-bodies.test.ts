import { describe, expect, it } from 'vitest'
import { chatBody } from '../bench/lib/bodies.js'

describe('bench request bodies (bench/lib/bodies.ts)', () => {
  it('puts the same earlier turns before each request\'s own prompt with --history, and asks for --max-tokens', () => {
    const body = chatBody({ model: 'bench-long', mode: 'unique', history: 3, maxTokens: 500 })
    const [a, b] = [JSON.parse(body(1)), JSON.parse(body(2))]
    expect(a.max_tokens).toBe(500)
    expect(a.messages.map((m: { role: string }) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user'])
    // the conversation is shared, the last prompt is the request's own
    expect(a.messages.slice(0, -1)).toEqual(b.messages.slice(0, -1))
    expect(a.messages.at(-1).content).not.toBe(b.messages.at(-1).content)
    expect(a.messages[2].content.length).toBeGreaterThan(300)
    expect(JSON.parse(chatBody({ model: 'm', mode: 'same' })(1)).messages).toHaveLength(2)
  })
})
