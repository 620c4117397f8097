import { describe, expect, it } from 'vitest'
import { afterOthers } from '../src/context.js'
import { createPipeline, finish } from '../src/pipeline.js'
import { chatContext } from './helpers/context.js'

describe('end callbacks (finish)', () => {
  it('run once each, innermost first, their async parts alongside each other, an afterOthers one last; a failing one stops none', async () => {
    const ctx = chatContext()
    const log: string[] = []
    ctx.onDone.push(afterOthers(() => void log.push('release (after the others)')))
    ctx.onDone.push(() => void log.push('outer (sync)'))
    ctx.onDone.push(async () => {
      log.push('settle sent')
      await new Promise((r) => setTimeout(r, 5))
      log.push('settle (async, slow) done')
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
    // the outer callback does not wait for the slow settlement; the afterOthers one does
    expect(log).toEqual(['inner sees boom', 'rejects', 'throws', 'settle sent', 'outer (sync)', 'settle (async, slow) done', 'release (after the others)'])
    await finish(ctx)
    expect(log).toHaveLength(7)
  })

  it('a JSON result is returned once the callbacks have started, without waiting for their round trips; ctx.ended resolves after them', async () => {
    const ctx = chatContext()
    const log: string[] = []
    const run = createPipeline([
      async (c, next) => {
        c.onDone.push(afterOthers(() => void log.push('release')))
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
    // every synchronous callback up to the afterOthers one ran before the answer came back
    expect(log).toEqual(['ledger (sync)', 'outer'])
    await ctx.ended
    expect(log).toEqual(['ledger (sync)', 'outer', 'settled', 'release'])
  })
})
