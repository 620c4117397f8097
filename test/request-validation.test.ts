import { Hono } from 'hono'
import { describe, expect, it } from 'vitest'
import { GatewayError } from '../src/errors.js'
import { bodySchema, chatRequestSchema, embeddingRequestSchema, readBody, type BodySchema } from '../routes/validate.js'

/** A one-route app that answers the validated body, or the error readBody threw, as the gateway would. */
function appFor<T>(schema: BodySchema<T>) {
  const app = new Hono()
  app.post('/', async (c) => {
    try {
      return c.json({ body: await readBody(c, schema) })
    } catch (err) {
      if (!(err instanceof GatewayError)) throw err
      return c.json(err.toJSON(), err.status as 400)
    }
  })
  return async (body: unknown, type = 'application/json') => {
    const res = await app.request('/', { method: 'POST', headers: { 'content-type': type }, body: typeof body === 'string' ? body : JSON.stringify(body) })
    return { status: res.status, json: (await res.json()) as { body?: unknown; error?: { message: string; type: string; param: string | null; code: string } } }
  }
}

const chat = appFor(chatRequestSchema)
const ok = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }

describe('readBody with the chat-completions schema', () => {
  it('accepts a valid body and returns it as sent, unknown fields and nulls included', async () => {
    const body = {
      ...ok,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image_url', image_url: { url: 'https://x' } }] },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'done' }
      ],
      stream: null,
      stream_options: null,
      max_tokens: null,
      max_completion_tokens: 5,
      n: 1,
      temperature: 0,
      top_p: null,
      seed: 7,
      logit_bias: { '50256': -100 },
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      metadata: { run: 'a' },
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } },
      some_future_field: { nested: [1, 2] }
    }
    const res = await chat(body)
    expect(res.status).toBe(200)
    expect(res.json.body).toEqual(body)
  })

  it('names the field and says what was expected, without echoing the value', async () => {
    const cases: [unknown, string | null, RegExp][] = [
      [{ messages: ok.messages }, 'model', /model'.*this field is required/],
      [{ ...ok, model: '' }, 'model', /at least 1 characters/],
      [{ ...ok, model: 'm'.repeat(257) }, 'model', /at most 256 characters/],
      [{ ...ok, messages: 'hi' }, 'messages', /expected array, got string/],
      [{ ...ok, messages: [] }, 'messages', /at least 1 items/],
      [{ ...ok, messages: [{ role: 'robot', content: 'x' }] }, 'messages.0.role', /expected one of "system", "developer", "user", "assistant", "tool"/],
      [{ ...ok, messages: [{ content: 'x' }] }, 'messages.0.role', /this field is required/],
      [{ ...ok, messages: [{ role: 'user', content: 42 }] }, 'messages.0.content', /expected string or array or null, got number/],
      [{ ...ok, messages: [{ role: 'user', content: [{ text: 'no type' }] }] }, 'messages.0.content.0.type', /required/],
      [{ ...ok, messages: [{ role: 'assistant', tool_calls: [{ id: 'c', type: 'fn', function: { name: 'f', arguments: '' } }] }] }, 'messages.0.tool_calls.0.type', /expected "function"/],
      [{ ...ok, temperature: 'hot' }, 'temperature', /expected number or null, got string/],
      [{ ...ok, temperature: 2.5 }, 'temperature', /must be <= 2/],
      [{ ...ok, max_tokens: 0 }, 'max_tokens', /must be > 0/],
      [{ ...ok, max_tokens: 1.5 }, 'max_tokens', /expected integer or null, got number/],
      [{ ...ok, n: 129 }, 'n', /must be <= 128/],
      [{ ...ok, stream: 'yes' }, 'stream', /expected boolean or null/],
      [{ ...ok, metadata: { a: 1 } }, 'metadata.a', /expected string, got number/],
      [{ ...ok, response_format: { type: 'yaml' } }, 'response_format.type', /expected one of "text", "json_object", "json_schema"/],
      [{ ...ok, user: 'u'.repeat(513) }, 'user', /at most 512 characters/],
      [[ok], null, /expected object, got array/]
    ]
    for (const [body, param, message] of cases) {
      const res = await chat(body)
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400)
      expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request', param })
      expect(res.json.error!.message).toMatch(/^Invalid request/)
      expect(res.json.error!.message).toMatch(message)
      expect(res.json.error!.message).not.toMatch(/robot|hot|yaml|uuuu/)
    }
  })

  it('counts string lengths in UTF-16 code units, as JavaScript does', async () => {
    // 128 astral characters are 256 code units: at the limit; one more is over it
    expect((await chat({ ...ok, model: '😀'.repeat(128) })).status).toBe(200)
    expect((await chat({ ...ok, model: '😀'.repeat(128) + 'x' })).json.error?.param).toBe('model')
  })

  it('refuses a body that is not JSON, and one that is not sent as JSON', async () => {
    expect((await chat('{"model":')).json.error).toMatchObject({ code: 'invalid_json', param: null })
    const wrongType = await chat(ok, 'application/x-www-form-urlencoded')
    expect(wrongType.status).toBe(415)
    expect((await chat(ok, 'application/vnd.api+json')).status).toBe(200)
  })
})

describe('readBody with the embeddings schema: one input, four accepted forms', () => {
  const embed = appFor(embeddingRequestSchema)
  it('accepts text, texts, tokens and token lists', async () => {
    for (const input of ['a', ['a', 'b'], [1, 2], [[1], [2, 3]]]) expect((await embed({ model: 'e', input })).status).toBe(200)
  })

  it('names the failure inside the one form whose type the input has, and the input itself otherwise', async () => {
    // an object is none of the forms
    let res = await embed({ model: 'e', input: { text: 'a' } })
    expect(res.json.error).toMatchObject({ param: 'input', message: expect.stringMatching(/accepted forms, got object/) })
    // arrays match three forms, so no single one is named
    res = await embed({ model: 'e', input: [1, 'a'] })
    expect(res.json.error).toMatchObject({ param: 'input', message: expect.stringMatching(/accepted forms, got array/) })
    res = await embed({ model: 'e', input: [] })
    expect(res.json.error?.param).toBe('input')
    res = await embed({ model: 'e', input: 'a', encoding_format: 'hex' })
    expect(res.json.error).toMatchObject({ param: 'encoding_format', message: expect.stringMatching(/"float", "base64"/) })
  })
})

describe('bodySchema', () => {
  it('fails at startup on a schema with a misspelt keyword (strict)', () => {
    expect(() => bodySchema({ type: 'object', properties: { a: { type: 'string', maxLenght: 3 } } })).toThrow(/maxLenght/)
  })

  it('names the one alternative of an anyOf whose type matched', async () => {
    const post = appFor(bodySchema({ type: 'object', properties: { v: { anyOf: [{ type: 'string' }, { type: 'object', required: ['k'], properties: { k: { type: 'integer' } } }] } } }))
    const res = await post({ v: { k: 'x' } })
    expect(res.json.error).toMatchObject({ param: 'v.k', message: expect.stringMatching(/expected integer, got string/) })
  })

  it('writes field names with / and ~ plainly in the param', async () => {
    const post = appFor(bodySchema({ type: 'object', required: ['a/b~c'], properties: { 'a/b~c': { type: 'integer' }, 'x/y': { type: 'string' } } }))
    expect((await post({})).json.error?.param).toBe('a/b~c')
    expect((await post({ 'a/b~c': 1, 'x/y': 2 })).json.error).toMatchObject({ param: 'x/y', message: expect.stringMatching(/got number/) })
  })
})
