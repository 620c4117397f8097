import { describe, expect, it } from 'vitest'
import { createContext } from '../src/auth/context.js'
import { teamPolicySchema } from '../src/config/schema.js'
import type { RequestContext } from '../src/context.js'
import { createPipeline, finish } from '../src/pipeline.js'

function context(): RequestContext {
  return createContext({
    principal: { team: 'a', keyId: 'k1' },
    policy: teamPolicySchema.parse({}),
    headers: {},
    request: { model: 'fast', messages: [{ role: 'user', content: 'hi' }] },
    surface: 'chat',
    signal: new AbortController().signal
  })
}

describe('end callbacks (finish)', () => {
  it('run once each, innermost first, awaiting the asynchronous ones before the next; a failing one stops none', async () => {
    const ctx = context()
    const log: string[] = []
    ctx.onDone.push(() => void log.push('outer (sync)'))
    ctx.onDone.push(async () => {
      await new Promise((r) => setTimeout(r, 5))
      log.push('settle (async, slow)')
    })
    ctx.onDone.push(() => {
      log.push('throws')
      throw new Error('sync failure')
    })
    ctx.onDone.push(async () => {
      log.push('rejects')
      throw new Error('async failure')
    })
    ctx.onDone.push((_c, error) => void log.push(`inner sees ${String(error)}`))
    await finish(ctx, 'boom')
    expect(log).toEqual(['inner sees boom', 'rejects', 'throws', 'settle (async, slow)', 'outer (sync)'])
    await finish(ctx)
    expect(log).toHaveLength(5)
  })

  it('a JSON result is returned only after every callback has finished', async () => {
    const ctx = context()
    let settled = false
    const run = createPipeline([
      async (c, next) => {
        c.onDone.push(async () => {
          await new Promise((r) => setTimeout(r, 5))
          settled = true
        })
        return next()
      },
      async () => ({ type: 'json', body: { id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [] } })
    ])
    await run(ctx)
    expect(settled).toBe(true)
  })
})
