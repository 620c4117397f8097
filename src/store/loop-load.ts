import { performance } from 'node:perf_hooks'

/** How often the event loop's utilization is sampled. */
const SAMPLE_MS = 100

/**
 * A reader of whether this process's event loop was busy over the last sample (`performance.eventLoopUtilization`
 * every 100 ms, on an unref'd timer started by the first call): true when the loop spent at least `threshold` of
 * the sample running callbacks rather than waiting for I/O. Cheap to call on every write: it reads a flag.
 *
 * @example
 * const busy = loopLoad(0.8)
 * if (busy()) holdUntilTurnEnds()
 */
export function loopLoad(threshold: number): () => boolean {
  let busy = false
  let last = performance.eventLoopUtilization()
  setInterval(() => {
    const now = performance.eventLoopUtilization()
    busy = performance.eventLoopUtilization(now, last).utilization >= threshold
    last = now
  }, SAMPLE_MS).unref()
  return () => busy
}
