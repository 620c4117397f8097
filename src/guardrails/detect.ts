/**
 * The shared shape of every text detector (PII, secrets, injection, deny rules) and the helpers that
 * run them. Detectors are pure: text in, match positions out.
 */

import { createTextMemo } from '../memo.js'

export interface Match {
  /** Rule name, e.g. `pii.email`, `secret.github`, `deny.competitors`. */
  rule: string
  /** Placeholder tag, e.g. `EMAIL` → `[EMAIL_1]`. */
  tag: string
  start: number
  end: number
}

export interface Detector {
  rule: string
  tag: string
  /**
   * Longest text this detector must see before a match is either certain or impossible: the stream
   * masker holds back this many characters (the largest over the active detectors).
   */
  window: number
  /**
   * Matches an unfinished candidate at the very end of a text (e.g. a JWT whose third part has not
   * arrived): a stream holds from there even beyond `window`.
   */
  pending?: RegExp
  /**
   * A string every `pending` match contains: the stream masker skips the regex on a text without it (most of a
   * stream: the email's `pending` tried at every position cost 6 % of a long masked stream's CPU).
   */
  pendingRequires?: string
  find(text: string): Match[]
}

interface RegexDetectorOptions {
  /** Extra check on the matched text (Luhn, mod-97...). */
  validate?: (value: string) => boolean
  /** Capture group that is the sensitive part (the rest is context, e.g. `aws_secret_access_key=`). */
  group?: number
  window?: number
  pending?: RegExp
  /** See `Detector.pendingRequires`. */
  pendingRequires?: string
  /**
   * A cheap necessary condition: a text without this string (any of these strings; a match of this regex) is
   * skipped without running the detector's regex. Every match must contain it, so nothing is missed.
   */
  requires?: string | readonly string[] | RegExp
}

const regexPrefilters = new Map<string, (text: string) => boolean>()

/**
 * One predicate per `requires` regex, shared by the detectors that name the same one (four PII detectors need a
 * digit), remembering its last answer: `findAll` runs every detector on the same text, so the text is tested once,
 * not once per detector (the digit test was 3 % of a long masked stream's CPU).
 */
function regexPrefilter(requires: RegExp): (text: string) => boolean {
  const flags = requires.flags.replace(/[gy]/g, '')
  const id = `${flags}/${requires.source}`
  let test = regexPrefilters.get(id)
  if (!test) {
    const re = new RegExp(requires.source, flags)
    let last: string | undefined
    let answer = false
    test = (text) => {
      // the same string is compared by reference first: O(1) on the repeated call
      if (text !== last) {
        answer = re.test(text)
        last = text
      }
      return answer
    }
    regexPrefilters.set(id, test)
  }
  return test
}

/** The pre-filter of `requires` as one predicate; undefined when there is none. */
function prefilter(requires: RegexDetectorOptions['requires']): ((text: string) => boolean) | undefined {
  if (requires === undefined) return undefined
  if (typeof requires === 'string') return (text) => text.includes(requires)
  if (requires instanceof RegExp) return regexPrefilter(requires)
  const any = [...(requires as readonly string[])]
  return (text) => {
    for (const r of any) if (text.includes(r)) return true
    return false
  }
}

/**
 * A detector from one regex (the `g` and `d` flags are added).
 *
 * @example
 * const email = regexDetector('pii.email', 'EMAIL', /[\w.+-]+@[\w-]+(?:\.[\w-]+)+/)
 * email.find('mail bob@example.com') // [{ rule: 'pii.email', tag: 'EMAIL', start: 5, end: 20 }]
 */
export function regexDetector(rule: string, tag: string, re: RegExp, opts: RegexDetectorOptions = {}): Detector {
  const flags = new Set(re.flags + 'gd')
  const global = new RegExp(re.source, [...flags].join(''))
  const group = opts.group ?? 0
  const unicode = /[uv]/.test(global.flags)
  const mayMatch = prefilter(opts.requires)
  return {
    rule,
    tag,
    window: opts.window ?? 64,
    pending: opts.pending,
    pendingRequires: opts.pendingRequires,
    find(text) {
      if (mayMatch && !mayMatch(text)) return []
      const out: Match[] = []
      // exec on the detector's own regex, not matchAll: matchAll makes a new RegExp (a species copy) per call,
      // which was most of a no-match scan's cost. The loop is synchronous, so sharing lastIndex is safe.
      global.lastIndex = 0
      let m: RegExpExecArray | null
      while ((m = global.exec(text)) !== null) {
        // an empty match would be found again at the same place: step past it, as matchAll does
        if (m[0].length === 0) global.lastIndex = advance(text, global.lastIndex, unicode)
        const span = m.indices?.[group]
        if (!span) continue
        const value = text.slice(span[0], span[1])
        if (opts.validate && !opts.validate(value)) continue
        out.push({ rule, tag, start: span[0], end: span[1] })
      }
      return out
    }
  }
}

/** The index after `at` as `String.prototype.matchAll` steps past an empty match: a whole code point in unicode mode. */
function advance(text: string, at: number, unicode: boolean): number {
  if (!unicode || at + 1 >= text.length) return at + 1
  const c = text.charCodeAt(at)
  if (c < 0xd800 || c > 0xdbff) return at + 1
  const d = text.charCodeAt(at + 1)
  return d >= 0xdc00 && d <= 0xdfff ? at + 2 : at + 1
}

/** Runs detectors, drops allow-listed values, and resolves overlaps: the earliest match wins, then the first detector, then the longest. */
export function findAll(text: string, detectors: readonly Detector[], allowed?: (value: string) => boolean): Match[] {
  if (text.length === 0 || detectors.length === 0) return []
  let all: (Match & { priority: number })[] = []
  detectors.forEach((d, priority) => {
    for (const m of d.find(text)) all.push({ ...m, priority })
  })
  if (all.length === 0) return all
  if (allowed) all = all.filter((m) => !allowed(text.slice(m.start, m.end)))
  all.sort((a, b) => a.start - b.start || a.priority - b.priority || b.end - a.end)
  const out: Match[] = []
  let lastEnd = -1
  for (const m of all) {
    if (m.start >= lastEnd) {
      out.push({ rule: m.rule, tag: m.tag, start: m.start, end: m.end })
      lastEnd = m.end
    }
  }
  return out
}

const NO_MATCHES: readonly Match[] = Object.freeze([])
/** Characters of text remembered per detector list and allow-list (a few MB at most over all policies). */
const REMEMBER_CHARS = 1_000_000
const REMEMBER_TEXT_MAX = 100_000
const remembered = new WeakMap<readonly Detector[], Map<unknown, (text: string) => readonly Match[]>>()

/**
 * `findAll` for input that repeats: an agent resends its system prompt and the whole conversation every
 * turn, and detectors are pure, so each text is scanned once per detector list and allow-list (least
 * recently used out first). The matches returned are frozen: they are shared.
 *
 * @example
 * const matches = findAllRemembered(message.content, layer.detectors, allowed)
 */
export function findAllRemembered(text: string, detectors: readonly Detector[], allowed?: (value: string) => boolean): readonly Match[] {
  if (text.length === 0 || detectors.length === 0) return NO_MATCHES
  if (text.length > REMEMBER_TEXT_MAX) return findAll(text, detectors, allowed)
  let byAllowed = remembered.get(detectors)
  if (!byAllowed) remembered.set(detectors, (byAllowed = new Map()))
  let find = byAllowed.get(allowed)
  if (!find) byAllowed.set(allowed, (find = createTextMemo((t) => frozenMatches(findAll(t, detectors, allowed)), REMEMBER_CHARS)))
  return find(text)
}

function frozenMatches(found: Match[]): readonly Match[] {
  return found.length === 0 ? NO_MATCHES : Object.freeze(found.map((m) => Object.freeze(m)))
}

/** Replaces matches (sorted, non-overlapping) with what `replacement` returns. */
export function replaceMatches(text: string, matches: readonly Match[], replacement: (m: Match, value: string) => string): string {
  if (matches.length === 0) return text
  let out = ''
  let pos = 0
  for (const m of matches) {
    out += text.slice(pos, m.start) + replacement(m, text.slice(m.start, m.end))
    pos = m.end
  }
  return out + text.slice(pos)
}

/** Escapes a literal for use inside a RegExp. */
export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

/**
 * Builds the allow-list check: exact terms (case-insensitive) or regexes that match the whole value.
 *
 * @example
 * const allowed = allowListCheck({ terms: ['support@acme.com'], regex: ['.*@acme\\.com'] })
 * allowed('bob@acme.com') // true
 */
export function allowListCheck(allow: { terms: string[]; regex: string[] } | undefined): ((value: string) => boolean) | undefined {
  if (!allow || (allow.terms.length === 0 && allow.regex.length === 0)) return undefined
  const terms = new Set(allow.terms.map((t) => t.toLowerCase()))
  const regexes = allow.regex.map((r) => new RegExp(`^(?:${r})$`, 'u'))
  return (value) => terms.has(value.toLowerCase()) || regexes.some((r) => r.test(value))
}
