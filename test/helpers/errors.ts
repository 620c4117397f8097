import type { APIError } from 'openai'

/**
 * The SDK error a request ends with; a request that succeeds fails the test.
 *
 * @example
 * const err = await refusal(client.chat.completions.create(body))
 * expect(err.status).toBe(429)
 */
export async function refusal(p: Promise<unknown>): Promise<APIError> {
  try {
    await p
  } catch (err) {
    return err as APIError
  }
  throw new Error('expected a refusal')
}

/** A response header of an SDK error (openai v6 hands the fetch `Headers`). */
export const errorHeader = (err: APIError, name: string) => (err.headers as unknown as Headers).get(name)
