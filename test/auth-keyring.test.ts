import { describe, expect, it } from 'vitest'
import { createKeyring, hashKey } from '../src/auth/index.js'
import { GatewayError } from '../src/errors.js'

const refusal = async (p: Promise<unknown>) => {
  const err = await p.then(() => undefined, (e: unknown) => e)
  expect(err).toBeInstanceOf(GatewayError)
  return (err as GatewayError).status
}

describe('createKeyring', () => {
  it('resolves a config key every time it comes, and refuses other keys before and after it', async () => {
    const identify = createKeyring([{ sha256: hashKey('sk-team-a-1'), team: 'a', user: 'ann' }])
    expect(await refusal(identify('sk-team-a-2'))).toBe(401)
    const first = await identify('sk-team-a-1')
    expect(first).toEqual({ team: 'a', keyId: hashKey('sk-team-a-1').slice(0, 12), user: 'ann' })
    expect(await identify('sk-team-a-1')).toEqual(first)
    // a key that only starts like a remembered one, or contains it, is another key
    expect(await refusal(identify('sk-team-a-1x'))).toBe(401)
    expect(await refusal(identify('sk-team-a-'))).toBe(401)
    expect(await refusal(identify(undefined))).toBe(401)
  })

  it('asks the store for keys made at run time on every request, so a revocation counts from the next one', async () => {
    let revoked = false
    const asked: string[] = []
    const identify = createKeyring([], async (sha) => {
      asked.push(sha)
      return revoked ? undefined : { sha256: sha, team: 'b' }
    })
    expect((await identify('sk-made-by-api')).team).toBe('b')
    expect((await identify('sk-made-by-api')).team).toBe('b')
    revoked = true
    expect(await refusal(identify('sk-made-by-api'))).toBe(401)
    expect(asked).toEqual(Array(3).fill(hashKey('sk-made-by-api')))
  })

  it('remembers config keys per keyring: a keyring built without a key refuses it, though another one knew it', async () => {
    const before = createKeyring([{ sha256: hashKey('sk-old'), team: 'a' }])
    expect((await before('sk-old')).team).toBe('a')
    const after = createKeyring([{ sha256: hashKey('sk-new'), team: 'a' }])
    expect(await refusal(after('sk-old'))).toBe(401)
    expect((await before('sk-old')).team).toBe('a')
  })
})
