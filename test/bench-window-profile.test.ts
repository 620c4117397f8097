import { describe, expect, it } from 'vitest'
import { profileWindows, type CpuProfile } from '../bench/lib/window-profile.js'

// bench/ttfb-profile.ts keeps only the CPU profile's samples inside each request's phase
describe('profileWindows', () => {
  // root → handler → parse; root → idle. Samples every 10 µs from t = 1000.
  const profile: CpuProfile = {
    startTime: 1000,
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 }, children: [2, 4] },
      { id: 2, callFrame: { functionName: 'handler', url: '/work/main/dist/routes/openai.js', lineNumber: 15 }, children: [3] },
      { id: 3, callFrame: { functionName: 'parse', url: '/x/node_modules/zod/v4/core/schemas.js', lineNumber: 96 } },
      { id: 4, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } }
    ],
    //         t: 1010 1020 1030 1040 1050 1060 1070 1080
    samples: [4, 2, 3, 3, 4, 4, 2, 4],
    timeDeltas: [10, 10, 10, 10, 10, 10, 10, 10]
  }

  it('counts only samples inside a window and shares each window by function, self and inclusive', () => {
    // windows [1015, 1045] (samples at 1020, 1030, 1040) and [1065, 1075] (1070); given out of order
    const p = profileWindows(profile, [[1065, 1075], [1015, 1045]])
    expect(p.windows).toBe(2)
    expect(p.samples).toBe(4)
    expect(p.meanWindowUs).toBe(20)
    const self = Object.fromEntries(p.self)
    // handler 2 of 4 samples, parse 2 of 4; the idle samples outside the windows are not counted
    expect(self['handler dist/routes/openai.js:15']).toBe(10)
    expect(self['parse node_modules/zod/v4/core/schemas.js:96']).toBe(10)
    expect(self['(idle) :-1']).toBeUndefined()
    const inclusive = Object.fromEntries(p.inclusive)
    expect(inclusive['handler dist/routes/openai.js:15']).toBe(20)
    expect(inclusive['(root) :-1']).toBe(20)
    expect(p.self[0]![1]).toBeGreaterThanOrEqual(p.self[1]![1])
  })

  it('reads nothing from windows outside the profile, or from none', () => {
    expect(profileWindows(profile, [[5000, 6000]])).toMatchObject({ windows: 1, samples: 0, self: [], inclusive: [] })
    expect(profileWindows(profile, [])).toMatchObject({ windows: 0, meanWindowUs: 0, samples: 0 })
  })
})
