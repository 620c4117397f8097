/**
 * Precision guard of the semantic cache: two texts can be close in embedding space and still ask opposite
 * things ("enable 2FA" / "disable 2FA", "top 5" / "top 10"). A candidate is rejected when the texts differ
 * in any small token that flips meaning; embeddings alone cannot be trusted with those.
 */

const NEGATIONS = new Set([
  'not', 'no', 'never', 'none', 'nobody', 'nothing', 'nowhere', 'neither', 'nor', 'without', 'cannot',
  'dont', 'doesnt', 'didnt', 'isnt', 'arent', 'wasnt', 'werent', 'wont', 'wouldnt', 'shouldnt', 'couldnt',
  'cant', 'hasnt', 'havent', 'hadnt', 'mustnt', 'neednt', 'except', 'unless', 'against', 'instead'
])

/** Words whose swap for a counterpart flips the request; grouped so plurals/forms share a root. */
const POLAR_PAIRS: [string, string][] = [
  ['enable', 'disable'], ['allow', 'deny'], ['allow', 'block'], ['add', 'remove'], ['add', 'delete'],
  ['create', 'delete'], ['create', 'destroy'], ['increase', 'decrease'], ['increment', 'decrement'],
  ['before', 'after'], ['above', 'below'], ['over', 'under'], ['max', 'min'], ['maximum', 'minimum'],
  ['true', 'false'], ['on', 'off'], ['yes', 'no'], ['start', 'stop'], ['open', 'close'], ['include', 'exclude'],
  ['accept', 'reject'], ['encrypt', 'decrypt'], ['encode', 'decode'], ['install', 'uninstall'], ['lock', 'unlock'],
  ['up', 'down'], ['more', 'less'], ['more', 'fewer'], ['higher', 'lower'], ['high', 'low'], ['first', 'last'],
  ['buy', 'sell'], ['import', 'export'], ['upload', 'download'], ['push', 'pull'], ['left', 'right'],
  ['inside', 'outside'], ['ascending', 'descending'], ['asc', 'desc'], ['sync', 'async'], ['public', 'private'],
  ['read', 'write'], ['show', 'hide'], ['connect', 'disconnect'], ['input', 'output'], ['client', 'server'],
  ['success', 'failure'], ['pass', 'fail'], ['valid', 'invalid'], ['safe', 'unsafe'], ['best', 'worst'],
  ['better', 'worse'], ['largest', 'smallest'], ['biggest', 'smallest'], ['longest', 'shortest'],
  ['fastest', 'slowest'], ['newest', 'oldest'], ['latest', 'earliest'], ['all', 'any'], ['all', 'some'],
  ['always', 'sometimes'], ['must', 'may'], ['should', 'shouldn'], ['to', 'from'], ['and', 'or'],
  ['plus', 'minus'], ['add', 'subtract'], ['multiply', 'divide'], ['row', 'column'],
  ['horizontal', 'vertical'], ['upper', 'lower'], ['uppercase', 'lowercase'], ['male', 'female'],
  ['north', 'south'], ['east', 'west'], ['day', 'night'], ['hot', 'cold'], ['win', 'lose'], ['same', 'different'],
  ['synchronous', 'asynchronous'], ['prefix', 'suffix'], ['head', 'tail'], ['import', 'require'], ['get', 'set'],
  ['get', 'post'], ['put', 'patch'], ['merge', 'rebase'], ['mutable', 'immutable'], ['static', 'dynamic']
]

/** Every word that takes part in a polar pair, and its counterparts. */
const COUNTERPARTS = new Map<string, string[]>()
for (const [x, y] of POLAR_PAIRS) {
  COUNTERPARTS.set(x, [...(COUNTERPARTS.get(x) ?? []), y])
  COUNTERPARTS.set(y, [...(COUNTERPARTS.get(y) ?? []), x])
}
const POLAR = new Set(COUNTERPARTS.keys())

const NUMBER_WORDS = new Map<string, string>(
  (
    'zero:0 one:1 two:2 three:3 four:4 five:5 six:6 seven:7 eight:8 nine:9 ten:10 eleven:11 twelve:12 ' +
    'thirteen:13 fourteen:14 fifteen:15 sixteen:16 seventeen:17 eighteen:18 nineteen:19 twenty:20 thirty:30 ' +
    'forty:40 fifty:50 sixty:60 seventy:70 eighty:80 ninety:90 hundred:100 thousand:1000 million:1e6 ' +
    'billion:1e9 trillion:1e12 half:0.5 once:1 twice:2 thrice:3 single:1 double:2 triple:3 dozen:12 ' +
    'second:2nd third:3rd fourth:4th fifth:5th'
  )
    .split(' ')
    .map((p) => p.split(':') as [string, string])
)

/** Prefixes that negate a word they are glued to (unlock, disallow, nonblocking, invalid...). */
const NEGATING_PREFIXES = ['un', 'dis', 'non', 'in', 'im', 'ir', 'il', 'de', 'anti', 'de-', 'non-', 'un-']

/**
 * Words that relate what stands before them to what stands after ("English to French", "Python than Java",
 * "TCP and UDP"): the same words on the other sides ask another question, or at least one the cache must
 * not assume is the same.
 */
const RELATIONAL = new Set([
  'to', 'from', 'into', 'onto', 'toward', 'towards', 'than', 'vs', 'versus', 'over', 'before', 'after',
  'and', 'or', 'then', 'per', 'by', 'with', 'instead', 'minus', 'between'
])

/** Words skipped when looking for what a relational word relates (they carry no operand of their own). */
const FILLER = new Set(
  ('a an the of in on at for as is are was were be been being it its this that these those i me my you your we our ' +
    'he she they them his her their do does did have has had will would shall should can could may might must so if ' +
    'there here what which who whom how when where why please').split(' ')
)

/** Content words on each side of a relational word that count as its operands. */
const OPERAND_WINDOW = 3

export interface Flip {
  kind: 'negation' | 'number' | 'polar' | 'prefix' | 'identifier' | 'order'
  /** The tokens that differ, for logs. */
  tokens: string[]
}

/**
 * Why two texts that look alike may not share an answer, or `undefined` when no meaning flip is found.
 *
 * @example
 * meaningFlip('how do I enable 2FA', 'how do I disable 2FA')   // { kind: 'polar', tokens: ['disable', 'enable'] }
 * meaningFlip('list the top 5 users', 'list the top 10 users') // { kind: 'number', tokens: ['10', '5'] }
 * meaningFlip('is Python faster than Java', 'is Java faster than Python') // { kind: 'order', tokens: ['python', 'than', 'java'] }
 * meaningFlip('How do I reset my password?', 'how can I reset my password') // undefined
 */
export function meaningFlip(a: string, b: string): Flip | undefined {
  const ta = analyse(a)
  const tb = analyse(b)
  return (
    differs('negation', ta.negations, tb.negations) ??
    differs('number', ta.numbers, tb.numbers) ??
    polarFlip(ta.polar, tb.polar) ??
    differs('identifier', ta.identifiers, tb.identifiers) ??
    prefixFlip(ta.words, tb.words) ??
    orderFlip(ta.sequence, tb.sequence)
  )
}

interface Analysis {
  words: Set<string>
  /** Every word in order (for the order check). */
  sequence: string[]
  negations: string[]
  numbers: string[]
  polar: string[]
  identifiers: string[]
}

function analyse(text: string): Analysis {
  const normalized = text.normalize('NFKC')
  const lower = normalized.toLowerCase()
  // Contractions fold into one token so "don't" counts as a negation ("dont").
  const words = (lower.replace(/[’']/g, '').match(/[\p{L}\p{N}]+(?:[.,][0-9]+)*/gu) ?? []).map((w) => w)
  const negations: string[] = []
  const numbers: string[] = []
  const polar: string[] = []
  for (const w of words) {
    // Every negation marker counts the same ("no" / "not" / "never"): what flips is how many there are.
    if (NEGATIONS.has(w)) negations.push('not')
    const num = NUMBER_WORDS.get(w)
    if (num !== undefined) numbers.push(num)
    else if (/[0-9]/.test(w)) numbers.push(...(w.replace(/(?<=[0-9]),(?=[0-9]{3})/g, '').match(/[0-9]+(?:\.[0-9]+)?/g) ?? []))
    const root = polarRoot(w)
    if (root !== undefined) polar.push(root)
  }
  return {
    words: new Set(words),
    sequence: words,
    negations: negations.sort(),
    numbers: numbers.map(canonicalNumber).sort(),
    polar: polar.sort(),
    identifiers: identifiersOf(normalized)
  }
}

/** "enabled", "enables", "enabling" → "enable" when the base form is a polar word. */
function polarRoot(w: string): string | undefined {
  if (POLAR.has(w)) return w
  for (const suffix of ['s', 'es', 'd', 'ed', 'ing', 'er', 'ers', 'ion', 'ions', 'ly']) {
    if (w.length > suffix.length + 2 && w.endsWith(suffix)) {
      const stem = w.slice(0, -suffix.length)
      if (POLAR.has(stem)) return stem
      if (POLAR.has(stem + 'e')) return stem + 'e'
      // doubled consonant: "stopped", "stopping"
      if (stem.length > 2 && stem.at(-1) === stem.at(-2) && POLAR.has(stem.slice(0, -1))) return stem.slice(0, -1)
    }
  }
  return undefined
}

function canonicalNumber(n: string): string {
  const x = Number(n)
  return Number.isFinite(x) && !/^0[0-9]/.test(n) ? String(x) : n
}

/** Code-like tokens: `quoted`, "quoted", snake_case, camelCase, dotted.names, paths, --flags. */
function identifiersOf(text: string): string[] {
  const out: string[] = []
  for (const m of text.matchAll(/`([^`]+)`|"([^"]{1,80})"/g)) out.push((m[1] ?? m[2])!.trim())
  for (const m of text.matchAll(/(?:^|[\s(])((?:--?|\/)?[A-Za-z_$][\w$]*(?:[._/:][\w$]+)+|--?[A-Za-z][\w-]*|[a-z]+[A-Z][\w$]*|[\w$]*_[\w$]+)/g)) {
    out.push(m[1]!)
  }
  return out.sort()
}

function differs(kind: Flip['kind'], a: string[], b: string[]): Flip | undefined {
  if (a.length === b.length && a.every((x, i) => x === b[i])) return undefined
  const sa = new Set(a)
  const sb = new Set(b)
  const tokens = [...new Set([...a.filter((x) => !sb.has(x)), ...b.filter((x) => !sa.has(x))])].sort()
  // Same tokens in other counts ("no, no" vs "no") still flips: report the tokens involved.
  return { kind, tokens: tokens.length > 0 ? tokens : [...sa].sort() }
}

/**
 * One text has a polar word the other lacks, and the other has its counterpart ("enable" / "disable").
 * A polar word alone ("how to reset" / "how do I reset") is not a flip: only the swap is.
 */
function polarFlip(a: string[], b: string[]): Flip | undefined {
  const sa = new Set(a)
  const sb = new Set(b)
  for (const w of sa) {
    if (sb.has(w)) continue
    for (const other of COUNTERPARTS.get(w) ?? []) {
      if (sb.has(other) && !sa.has(other)) return { kind: 'polar', tokens: [w, other].sort() }
    }
  }
  return undefined
}

/** A word in one text is another word of the other text with a negating prefix ("lock" / "unlock"). */
function prefixFlip(a: Set<string>, b: Set<string>): Flip | undefined {
  for (const [x, y] of [[a, b], [b, a]] as const) {
    for (const w of x) {
      if (y.has(w)) continue
      for (const p of NEGATING_PREFIXES) {
        if (w.length > p.length + 2 && w.startsWith(p) && y.has(w.slice(p.length)) && !x.has(w.slice(p.length))) {
          return { kind: 'prefix', tokens: [w, w.slice(p.length)].sort() }
        }
      }
    }
  }
  return undefined
}

/**
 * The same two words on either side of a relational word, swapped: "from English to French" / "from French
 * to English", "30 celsius to fahrenheit" / "30 fahrenheit to celsius", "Python faster than Java" / "Java
 * faster than Python". Word sets cannot see this; embeddings barely do (0.87–0.91 with the builtin one).
 *
 * Each text is read as local "x REL y" patterns: x among the few content words just before a relational
 * word, y among those just after. A flip is a pattern of one text found reversed ("y REL x") in the other.
 * Only local patterns count, so clauses moved around in a long sentence are not a flip. Words that occur
 * more than once in either text are ambiguous and skipped. Symmetric swaps ("TCP and UDP" / "UDP and TCP")
 * are rejected as well: precision first, a miss only costs one upstream call.
 */
function orderFlip(a: string[], b: string[]): Flip | undefined {
  const ca = counts(a)
  const cb = counts(b)
  const operand = (w: string) => !RELATIONAL.has(w) && !FILLER.has(w) && ca.get(w) === 1 && cb.get(w) === 1
  const inB = new Set<string>()
  for (const [x, , y] of relations(b, operand)) inB.add(x + ' ' + y)
  if (inB.size === 0) return undefined
  for (const [x, rel, y] of relations(a, operand)) if (inB.has(y + ' ' + x)) return { kind: 'order', tokens: [x, rel, y] }
  return undefined
}

/** Every local "x REL y" pattern of a text, over the words `operand` accepts. */
function* relations(words: string[], operand: (w: string) => boolean): Generator<[string, string, string]> {
  for (let r = 0; r < words.length; r++) {
    if (!RELATIONAL.has(words[r]!)) continue
    const before = operandsAround(words, r, -1, operand)
    if (before.length === 0) continue
    for (const y of operandsAround(words, r, 1, operand)) for (const x of before) if (x !== y) yield [x, words[r]!, y]
  }
}

/** Up to OPERAND_WINDOW content words on one side of position `at` (fillers skipped, relational words stop). */
function operandsAround(words: string[], at: number, step: 1 | -1, operand: (w: string) => boolean): string[] {
  const out: string[] = []
  let seen = 0
  for (let i = at + step; i >= 0 && i < words.length && seen < OPERAND_WINDOW; i += step) {
    const w = words[i]!
    if (FILLER.has(w)) continue
    if (RELATIONAL.has(w)) break
    seen++
    if (operand(w)) out.push(w)
  }
  return out
}

function counts(words: string[]): Map<string, number> {
  const m = new Map<string, number>()
  for (const w of words) m.set(w, (m.get(w) ?? 0) + 1)
  return m
}
