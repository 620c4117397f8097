import OpenAI from 'openai'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startFakeUpstream } from '../bench/fake-upstream.js'
import { startReferenceServer, type BodyReading, type ReferenceKind } from '../bench/reference-servers.js'

// The bench reads Sluice's numbers against these servers: each must really answer, and the Hono proxy must
// really go upstream (a reference that answered without the round trip would flatter the framework).
describe('bench reference servers', () => {
  let fake: { port: number; close: () => Promise<void> }
  const servers: { close: () => Promise<void> }[] = []

  beforeAll(async () => {
    fake = await startFakeUpstream(0)
  })
  afterAll(async () => {
    for (const s of servers) await s.close()
    await fake.close()
  })

  const clientFor = async (kind: ReferenceKind, body: BodyReading = 'node') => {
    const ref = await startReferenceServer({ kind, port: 0, upstream: `http://127.0.0.1:${fake.port}`, body })
    servers.push(ref)
    return new OpenAI({ baseURL: `http://127.0.0.1:${ref.port}/v1`, apiKey: 'unused', maxRetries: 0 })
  }

  it.each(['node-answer', 'hono-answer'] as const)('%s answers a constant completion', async (kind) => {
    const client = await clientFor(kind)
    const res = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    expect(res.id).toBe('chatcmpl-reference')
    expect(res.choices[0]!.message.content!.split(' ')).toHaveLength(16)
  })

  it.each(['node', 'hono'] as const)('hono-proxy (body read by %s) forwards to the upstream and returns its answer', async (body) => {
    const client = await clientFor('hono-proxy', body)
    // the fake reads its behaviour from the model name and answers with that many tokens
    const res = await client.chat.completions.create({ model: 'gpt-4o-mini@tokens=3', messages: [{ role: 'user', content: 'hi' }] })
    expect(res.id).toBe('chatcmpl-fake')
    expect(res.model).toBe('gpt-4o-mini@tokens=3')
    expect(res.usage?.completion_tokens).toBe(3)
  })

  it.each(['node-answer', 'hono-answer'] as const)('%s refuses a body that is not JSON', async (kind) => {
    const ref = await startReferenceServer({ kind, port: 0 })
    servers.push(ref)
    const res = await fetch(`http://127.0.0.1:${ref.port}/v1/chat/completions`, { method: 'POST', body: 'not json' })
    expect(res.status).toBe(400)
  })
})
