import { describe, expect, it } from 'vitest'
import { createPipeline, finish } from '../src/pipeline.js'
import { chatContext } from './helpers/context.js'

describe('end callbacks (finish)', () => {
  it('run once each, innermost first, awaiting the asynchronous ones before the next; a failing one stops none', async () => {
    const ctx = chatContext()
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

  it('a JSON result is returned once the callbacks have started, without waiting for their round trips; ctx.ended resolves after them', async () => {
    const ctx = chatContext()
    const log: string[] = []
    const run = createPipeline([
      async (c, next) => {
        c.onDone.push(() => void log.push('outer'))
        c.onDone.push(async () => {
          await new Promise((r) => setTimeout(r, 5))
          log.push('settled')
        })
        c.onDone.push(() => void log.push('ledger (sync)'))
        return next()
      },
      async () => ({ type: 'json', body: { id: 'x', object: 'chat.completion', created: 1, model: 'm', choices: [] } })
    ])
    const result = await run(ctx)
    expect(result.type).toBe('json')
    // the synchronous callbacks before the first asynchronous one ran before the answer came back
    expect(log).toEqual(['ledger (sync)'])
    await ctx.ended
    expect(log).toEqual(['ledger (sync)', 'settled', 'outer'])
  })
})
