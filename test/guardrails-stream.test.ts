import { describe, expect, it } from 'vitest'
import { PII_DETECTORS } from '../src/guardrails/pii.js'
import { SECRET_DETECTORS } from '../src/guardrails/secrets.js'
import { createStreamMasker } from '../src/guardrails/stream-mask.js'
import { createPlaceholderVault, createStreamRestorer } from '../src/guardrails/vault.js'

const detectors = [...Object.values(SECRET_DETECTORS), ...Object.values(PII_DETECTORS)]
const masker = () => createStreamMasker({ detectors, onMatch: (m) => `[${m.tag}]` })

/** Feeds pieces, returning what was sent after each push and the whole output. */
function feed(pieces: string[]) {
  const m = masker()
  const sent = pieces.map((p) => m.push(p))
  return { sent, all: sent.join('') + m.flush() }
}

describe('createStreamMasker', () => {
  const token = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789'

  it('masks a secret split across three chunks', () => {
    const { sent, all } = feed(['Your token is ghp_abcdefghij', 'klmnopqrstuvwxyz01', '23456789 keep it safe.'])
    expect(all).toBe('Your token is [GITHUB_TOKEN] keep it safe.')
    for (const s of sent) expect(s).not.toMatch(/ghp_|klmnop|23456789/)
  })

  it('masks a token cut one character at a time', () => {
    const text = `a ${token} b`
    expect(feed([...text]).all).toBe('a [GITHUB_TOKEN] b')
  })

  it('lets text without secrets flow, holding back no more than the window', () => {
    const m = masker()
    const window = Math.max(...detectors.map((d) => d.window))
    const long = 'The quick brown fox jumps over the lazy dog. '.repeat(20)
    const out = m.push(long)
    expect(out.length).toBeGreaterThanOrEqual(long.length - window)
    expect(out + m.flush()).toBe(long)
  })

  it('holds a JWT whose signature has not arrived yet beyond the window', () => {
    const header = 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.'
    const payload = 'eyJ' + 'a'.repeat(200) + '.'
    const m = masker()
    const sent = [m.push('auth ' + header), m.push(payload), m.push('abcdefghijklmnop and more text')]
    const all = sent.join('') + m.flush()
    expect(all).toBe('auth [JWT] and more text')
    expect(sent.join('')).not.toContain('eyJ')
  })

  it('holds a private key until its END line, then masks it whole', () => {
    const pem = '-----BEGIN PRIVATE KEY-----\n' + 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASC'.repeat(20) + '\n-----END PRIVATE KEY-----'
    const pieces = ['key:\n', ...pem.match(/.{1,50}/gs)!, '\nthat was it']
    const { sent, all } = feed(pieces)
    expect(all).toBe('key:\n[PRIVATE_KEY]\nthat was it')
    expect(sent.join('')).not.toContain('MIIE')
  })

  it('holds an e-mail whose domain is still growing beyond the window', () => {
    const domain = Array.from({ length: 30 }, (_, i) => `part${i}.`).join('')
    const pieces = ['mail jane.doe@', ...domain.match(/.{1,7}/g)!, 'example.com soon']
    const { sent, all } = feed(pieces)
    expect(all).toBe('mail [EMAIL] soon')
    expect(sent.join('')).not.toContain('jane')
    expect(sent.join('')).not.toContain('part')
  })

  it('gives the same answers when detectors sharing a pre-filter see texts in turn', () => {
    const texts = ['call +1 415 555 0132 now', 'no figures here', 'SSN 123-45-6789', 'still nothing']
    const pad = ' '.repeat(200)
    expect(feed(texts.map((t) => t + pad)).all).toBe(['call [PHONE] now', 'no figures here', 'SSN [SSN]', 'still nothing'].map((t) => t + pad).join(''))
  })

  it('does not mask an e-mail split across chunks twice or leave its parts', () => {
    expect(feed(['mail jane.d', 'oe@exam', 'ple.com soon']).all).toBe('mail [EMAIL] soon')
  })

  it('can block: onMatch throwing stops the stream before the value is sent', () => {
    const m = createStreamMasker({
      detectors: [SECRET_DETECTORS.stripe],
      onMatch: () => {
        throw new Error('blocked')
      }
    })
    expect(m.push('pay with sk_live_abcdefghij')).toBe('')
    expect(() => m.push('klmnopqrstuvwxyz and more text to pass the window')).toThrow('blocked')
  })
})

describe('placeholder vault', () => {
  it('gives the same placeholder to the same value and restores them', () => {
    const v = createPlaceholderVault()
    expect(v.placeholder('EMAIL', 'a@x.io')).toBe('[EMAIL_1]')
    expect(v.placeholder('EMAIL', 'b@x.io')).toBe('[EMAIL_2]')
    expect(v.placeholder('EMAIL', 'a@x.io')).toBe('[EMAIL_1]')
    expect(v.restore('to [EMAIL_2] and [EMAIL_1], not [EMAIL_3]')).toBe('to b@x.io and a@x.io, not [EMAIL_3]')
  })

  it('restores a placeholder split across stream chunks', () => {
    const v = createPlaceholderVault()
    v.placeholder('EMAIL', 'a@x.io')
    const r = createStreamRestorer(v)
    const sent = [r.push('Write to [EM'), r.push('AIL_'), r.push('1] today [sic')]
    expect(sent[0]).toBe('Write to ')
    expect(sent.join('') + r.flush()).toBe('Write to a@x.io today [sic')
  })
})
