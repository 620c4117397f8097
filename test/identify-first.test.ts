/**
 * The key is checked before the body is read, on every surface: a caller without a valid key gets 401 (in the
 * surface's own error shape), never a 400 about the body, and cannot make the gateway read and parse a large body.
 */
import { request } from 'node:http'
import { describe, expect, it } from 'vitest'
import { TEAM_A_KEY, useFakeOpenAIGateway } from './helpers/gateway.js'

const stack = useFakeOpenAIGateway()


const surfaces = ['/v1/chat/completions', '/v1/embeddings', '/v1/messages', '/v1/messages/count_tokens', '/v1/responses']

const post = (path: string, body: string, headers: Record<string, string>) =>
  fetch(`${stack.gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })

describe('identify before reading the body', () => {
  it('answers {} and malformed JSON with 401 when the key is missing or wrong', async () => {
    for (const path of surfaces) {
      for (const headers of [{}, { authorization: 'Bearer sk-wrong' }, { 'x-api-key': 'sk-wrong' }] as Record<string, string>[]) {
        for (const body of ['{}', '{not json']) {
          const res = await post(path, body, headers)
          const json = (await res.json()) as { error: { type: string; message: string } }
          expect(res.status, `${path} ${JSON.stringify(headers)} ${body}`).toBe(401)
          expect(json.error.message).not.toMatch(/model/)
          if (path.startsWith('/v1/messages')) expect(json).toMatchObject({ type: 'error', error: { type: 'authentication_error' } })
          else expect(json.error).toMatchObject({ type: 'authentication_error', code: Object.keys(headers).length ? 'invalid_api_key' : 'missing_api_key' })
        }
      }
    }
  })

  it('still validates the body of a caller with a good key', async () => {
    for (const path of surfaces) {
      const res = await post(path, '{}', { authorization: `Bearer ${TEAM_A_KEY}` })
      expect(res.status, path).toBe(400)
      expect(JSON.stringify(await res.json())).toMatch(/model/)
    }
  })

  it('answers 401 before a 4 MB body has been sent', async () => {
    for (const path of surfaces) {
      const { status, bodySent } = await new Promise<{ status: number; bodySent: number }>((resolve, reject) => {
        let sent = 0
        const req = request(`${stack.gw.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': String(4_000_000) } })
        const timer = setTimeout(() => {
          req.destroy()
          reject(new Error(`${path}: no answer while the body was still being sent`))
        }, 3000)
        req.on('response', (res) => {
          clearTimeout(timer)
          res.resume()
          resolve({ status: res.statusCode!, bodySent: sent })
          req.destroy()
        })
        req.on('error', () => {})
        // the start of the body only; the rest never comes
        const head = Buffer.from('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"')
        sent += head.length
        req.write(head)
      })
      expect(status, path).toBe(401)
      expect(bodySent).toBeLessThan(1000)
    }
  })
})
