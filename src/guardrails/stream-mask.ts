import { findAll, type Detector, type Match } from './detect.js'

export interface StreamMasker {
  /** Adds a piece of text; returns what may be sent now (masked). */
  push(text: string): string
  /** Ends the text: returns everything still held (masked). */
  flush(): string
}

export interface StreamMaskerOptions {
  detectors: readonly Detector[]
  /** Allow-list check on matched values. */
  allowed?: (value: string) => boolean
  /** What replaces a match about to be sent; `undefined` sends it unchanged. May throw to block. */
  onMatch: (match: Match, value: string) => string | undefined
  /** Hard cap on held text: a match still growing past it is sent masked as it stands. Default 16 KiB. */
  maxHold?: number
}

/** Characters of sent text kept as look-behind context for the detectors' boundaries. */
const CONTEXT = 16

/**
 * Masks matches in a text that arrives in pieces while holding back only a bounded window: the
 * largest `window` of the detectors (the length after which a match is certain), plus a match that is
 * still growing at the end of what has arrived. Everything before that flows immediately, so a secret
 * split across any number of chunks is still masked whole.
 *
 * @example
 * const m = createStreamMasker({ detectors: [SECRET_DETECTORS.github], onMatch: () => '[GITHUB_TOKEN]' })
 * m.push('token ghp_abc') + m.push('def...') + m.flush()
 */
export function createStreamMasker(opts: StreamMaskerOptions): StreamMasker {
  const window = opts.detectors.reduce((w, d) => Math.max(w, d.window), 0)
  const pendings = opts.detectors.flatMap((d) => (d.pending ? [{ re: d.pending, requires: d.pendingRequires }] : []))
  const maxHold = opts.maxHold ?? 16 * 1024
  let held = ''
  let context = ''

  function drain(final: boolean): string {
    if (held.length === 0) return ''
    const full = context + held
    const offset = context.length
    const matches = findAll(full, opts.detectors, opts.allowed).filter((m) => m.start >= offset)
    let cut = full.length
    if (!final) {
      cut = full.length - window
      for (const { re, requires } of pendings) {
        if (requires !== undefined && !full.includes(requires)) continue
        const p = re.exec(full)
        if (p && p.index < cut) cut = p.index
      }
      for (const m of matches) {
        if (m.start >= cut) break
        if (m.end <= cut) continue
        // A match across the cut: send it whole if it has ended, hold it whole if it may still grow.
        if (m.end >= full.length) {
          cut = m.start
          break
        }
        cut = m.end
      }
      if (full.length - Math.max(cut, offset) > maxHold) cut = full.length
      if (cut <= offset) return ''
    }
    let out = ''
    let pos = offset
    for (const m of matches) {
      if (m.start >= cut) break
      const value = full.slice(m.start, m.end)
      const replacement = opts.onMatch(m, value)
      out += full.slice(pos, m.start) + (replacement ?? value)
      pos = m.end
    }
    const sentEnd = Math.max(pos, cut)
    out += full.slice(pos, sentEnd)
    context = full.slice(Math.max(0, sentEnd - CONTEXT), sentEnd)
    held = full.slice(sentEnd)
    return out
  }

  return {
    push(text) {
      if (text.length === 0) return ''
      held += text
      return drain(false)
    },
    flush() {
      return drain(true)
    }
  }
}
