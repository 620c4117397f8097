/**
 * Reversible redaction: each distinct sensitive value of a request gets a stable placeholder
 * (`[EMAIL_1]`, `[EMAIL_2]`, `[CARD_1]`...) before the provider sees the text, and the answer gets the
 * values back. Lives for one request (in `ctx.state`), never stored or logged.
 */
export interface PlaceholderVault {
  /** The placeholder for a value, the same one each time the value appears. */
  placeholder(tag: string, value: string): string
  /** Puts the original values back in place of known placeholders. */
  restore(text: string): string
  readonly size: number
}

const PLACEHOLDER = /\[([A-Z][A-Z_]*_\d+)\]/g

/**
 * @example
 * const vault = createPlaceholderVault()
 * vault.placeholder('EMAIL', 'bob@example.com') // '[EMAIL_1]'
 * vault.restore('Mail [EMAIL_1] today') // 'Mail bob@example.com today'
 */
export function createPlaceholderVault(): PlaceholderVault {
  const byValue = new Map<string, string>()
  const byPlaceholder = new Map<string, string>()
  const counters = new Map<string, number>()
  return {
    placeholder(tag, value) {
      const key = `${tag}\u0000${value}`
      const known = byValue.get(key)
      if (known) return known
      const n = (counters.get(tag) ?? 0) + 1
      counters.set(tag, n)
      const ph = `[${tag}_${n}]`
      byValue.set(key, ph)
      byPlaceholder.set(ph.slice(1, -1), value)
      return ph
    },
    restore(text) {
      if (byPlaceholder.size === 0 || !text.includes('[')) return text
      return text.replace(PLACEHOLDER, (whole, inner: string) => byPlaceholder.get(inner) ?? whole)
    },
    get size() {
      return byPlaceholder.size
    }
  }
}

/** Longest placeholder prefix a stream may have to hold back: `[` + tag + `_` + digits. */
const MAX_PLACEHOLDER = 40
const PARTIAL_PLACEHOLDER = /\[[A-Z_0-9]*$/

/**
 * Restores placeholders in a stream of text pieces: holds back only a trailing `[...` that may be the
 * start of a placeholder split across chunks.
 *
 * @example
 * const r = createStreamRestorer(vault)
 * r.push('Mail [EMA') + r.push('IL_1] now') + r.flush() // 'Mail bob@example.com now'
 */
export function createStreamRestorer(vault: PlaceholderVault): { push(text: string): string; flush(): string } {
  let held = ''
  return {
    push(text) {
      const buf = held + text
      const partial = PARTIAL_PLACEHOLDER.exec(buf.length > MAX_PLACEHOLDER ? buf.slice(-MAX_PLACEHOLDER) : buf)
      const cut = partial ? buf.length - partial[0].length : buf.length
      held = buf.slice(cut)
      return vault.restore(buf.slice(0, cut))
    },
    flush() {
      const out = vault.restore(held)
      held = ''
      return out
    }
  }
}
