/**
 * A V8 CPU profile (`node --cpu-prof`) read only inside given time windows, e.g. from a request's arrival to its
 * upstream call: where a phase's time goes, per function, without the rest of the run around it.
 */

/** The parts of a `.cpuprofile` this reads. Times are µs of the monotonic clock (process.hrtime). */
export interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[]
  startTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface WindowProfile {
  windows: number
  /** Mean window length, µs. */
  meanWindowUs: number
  /** Samples that fell inside a window. */
  samples: number
  /** µs per window spent in each function itself, largest first. */
  self: [string, number][]
  /** µs per window spent in each function and what it called, largest first. */
  inclusive: [string, number][]
}

/**
 * The profile's samples inside `windows` (each `[start, end]` in µs on the profile's clock), attributed per
 * function: a function's share of the samples in windows times the mean window length. Samples are taken at an
 * interval the process cannot always keep, so shares, not counts, carry the time. Functions are named
 * `name file:line` (paths shortened after dist/ or node_modules/).
 *
 * @example
 * const p = profileWindows(JSON.parse(await readFile(file, 'utf8')), rows.map((r) => [r.arrive, r.sent]))
 * p.self.slice(0, 20)
 */
export function profileWindows(profile: CpuProfile, windows: [number, number][]): WindowProfile {
  const sorted = windows.filter(([a, b]) => b >= a).sort((x, y) => x[0] - y[0])
  const byId = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const name = (id: number) => {
    const f = byId.get(id)!.callFrame
    return `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(dist|node_modules)\//, '$1/')}:${f.lineNumber}`
  }
  const self = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let inside = 0
  let t = profile.startTime
  let w = 0
  for (let i = 0; i < profile.samples.length && w < sorted.length; i++) {
    t += profile.timeDeltas[i]!
    while (w < sorted.length && sorted[w]![1] < t) w++
    if (w >= sorted.length || t < sorted[w]![0]) continue
    inside++
    const id = profile.samples[i]!
    self.set(name(id), (self.get(name(id)) ?? 0) + 1)
    // a recursive function counts once per sample
    const seen = new Set<string>()
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const k = name(at)
      if (seen.has(k)) continue
      seen.add(k)
      inclusive.set(k, (inclusive.get(k) ?? 0) + 1)
    }
  }
  const meanWindowUs = sorted.length ? sorted.reduce((s, [a, b]) => s + b - a, 0) / sorted.length : 0
  const perWindow = (m: Map<string, number>): [string, number][] =>
    [...m].map(([k, c]): [string, number] => [k, inside ? (c / inside) * meanWindowUs : 0]).sort((a, b) => b[1] - a[1])
  return { windows: sorted.length, meanWindowUs, samples: inside, self: perWindow(self), inclusive: perWindow(inclusive) }
}
