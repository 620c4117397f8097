import { isIPv6 } from 'node:net'
import { regexDetector, type Detector } from './detect.js'
import type { PiiType } from './schema.js'

/**
 * Luhn checksum of a card number (separators ignored).
 *
 * @example
 * luhnValid('4111 1111 1111 1111') // true
 */
export function luhnValid(value: string): boolean {
  const digits = value.replace(/[^0-9]/g, '')
  if (digits.length < 13 || digits.length > 19) return false
  let sum = 0
  let double = false
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48
    if (double) {
      d *= 2
      if (d > 9) d -= 9
    }
    sum += d
    double = !double
  }
  return sum % 10 === 0
}

/** Card networks' leading digits: Visa, Mastercard, Amex, Discover, Diners, JCB, UnionPay. */
const CARD_PREFIX = /^(?:4|5[1-5]|2[2-7]|3[47]|3[068]|6(?:011|5|4[4-9]|2)|35)/

/**
 * IBAN check digits (ISO 13616 mod-97), spaces ignored.
 *
 * @example
 * ibanValid('GB82 WEST 1234 5698 7654 32') // true
 */
export function ibanValid(value: string): boolean {
  const iban = value.replace(/ /g, '').toUpperCase()
  if (iban.length < 15 || iban.length > 34 || !/^[A-Z]{2}\d{2}[A-Z0-9]+$/.test(iban)) return false
  const rearranged = iban.slice(4) + iban.slice(0, 4)
  let rem = 0
  for (const ch of rearranged) {
    const code = ch.charCodeAt(0)
    const n = code >= 65 ? String(code - 55) : ch
    for (const digit of n) rem = (rem * 10 + (digit.charCodeAt(0) - 48)) % 97
  }
  return rem === 1
}

function phoneValid(value: string): boolean {
  const digits = value.replace(/[^0-9]/g, '').length
  return digits >= 9 && digits <= 15
}

function ipv6Valid(value: string): boolean {
  // Real addresses have several hex groups; this keeps "a::b" or "std::" style text out.
  return isIPv6(value) && (value.match(/[0-9a-fA-F]+/g) ?? []).length >= 3
}

/** Every detector below but email, IPv4 and IPv6 (which have their own) needs a digit in its match. */
const DIGIT = /\d/

/** Every PII detector, by type. Regexes favour precision: the hard negatives in the labelled set are dates, versions and ids. */
export const PII_DETECTORS: Record<PiiType, Detector> = {
  email: regexDetector('pii.email', 'EMAIL', /(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![\w-])/, {
    window: 128,
    pending: /(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9.-]*$/,
    pendingRequires: '@',
    requires: '@'
  }),
  phone: regexDetector(
    'pii.phone',
    'PHONE',
    // International (+CC ...), North American ((555) 123-4567 / 555-123-4567), or national trunk 0 (020 7946 0958).
    /(?<![\w+.\/-])(?:\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,5}|\([2-9]\d{2}\) ?[2-9]\d{2}[ .-]\d{4}|[2-9]\d{2}[ .-][2-9]\d{2}[ .-]\d{4}|0\d{2,4}[ -]\d{3,4}[ -]?\d{3,4})(?![\w.\/-]?\d)/,
    { validate: phoneValid, window: 32, requires: DIGIT }
  ),
  credit_card: regexDetector('pii.credit_card', 'CARD', /(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])/, {
    requires: DIGIT,
    validate: (v) => CARD_PREFIX.test(v) && luhnValid(v) && /^(?:\d+|\d+(?:([ -])\d+)(?:\1\d+)*)$/.test(v),
    window: 32
  }),
  iban: regexDetector('pii.iban', 'IBAN', /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])/, {
    validate: ibanValid,
    window: 48,
    requires: DIGIT
  }),
  us_ssn: regexDetector('pii.us_ssn', 'SSN', /(?<![\d-])(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\d-])/, { window: 16, requires: DIGIT }),
  uk_nino: regexDetector(
    'pii.uk_nino',
    'NINO',
    /(?<![A-Za-z0-9])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![A-Za-z0-9])/,
    { window: 16, requires: DIGIT }
  ),
  ipv4: regexDetector('pii.ipv4', 'IP', /(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)/, {
    window: 20,
    requires: '.'
  }),
  ipv6: regexDetector('pii.ipv6', 'IP', /(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?![\w:]|\.\d)/, {
    validate: ipv6Valid,
    window: 48,
    requires: ':'
  })
}
