import { regexDetector, type Detector } from './detect.js'
import type { SecretType } from './schema.js'

/**
 * Every secret detector, by type. Prefix-anchored formats (the providers publish them) are precise;
 * the AWS secret key has no prefix, so it is only taken next to its variable name.
 *
 * Windows: a token is certain once its fixed prefix and minimum length have been seen, so a stream needs
 * to hold back only that much; longer tokens keep growing as one match and stay held until they end.
 */
export const SECRET_DETECTORS: Record<SecretType, Detector> = {
  openai: regexDetector('secret.openai', 'OPENAI_KEY', /(?<![\w-])sk-(?!ant-)(?:(?:proj|svcacct|admin)-)?[A-Za-z0-9_-]{20,}/, { window: 48, requires: 'sk-' }),
  anthropic: regexDetector('secret.anthropic', 'ANTHROPIC_KEY', /(?<![\w-])sk-ant-[a-z0-9]+-[A-Za-z0-9_-]{20,}/, { window: 48, requires: 'sk-ant-' }),
  aws_access_key: regexDetector('secret.aws_access_key', 'AWS_KEY', /(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])/, { window: 24, requires: ['AKIA', 'ASIA'] }),
  aws_secret_key: regexDetector(
    'secret.aws_secret_key',
    'AWS_SECRET',
    /(?:aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key|SecretAccessKey)["']?\s*[:=]\s*["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])/i,
    { group: 1, window: 80, requires: /secret/i }
  ),
  google_api_key: regexDetector('secret.google_api_key', 'GOOGLE_KEY', /(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])/, { window: 40, requires: 'AIza' }),
  github: regexDetector('secret.github', 'GITHUB_TOKEN', /(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{50,})/, { window: 64, requires: ['gh', 'github_pat_'] }),
  slack: regexDetector('secret.slack', 'SLACK_TOKEN', /(?<![\w-])xox[abposre]-[A-Za-z0-9-]{10,}/, { window: 24, requires: 'xox' }),
  stripe: regexDetector('secret.stripe', 'STRIPE_KEY', /(?<![\w-])(?:sk|rk)_live_[A-Za-z0-9]{20,}/, { window: 32, requires: '_live_' }),
  // An unterminated block counts up to the end of the text: in a stream it is held until END arrives.
  private_key: regexDetector(
    'secret.private_key',
    'PRIVATE_KEY',
    /-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|$)/,
    { window: 40, requires: '-----BEGIN ' }
  ),
  jwt: regexDetector('secret.jwt', 'JWT', /(?<![\w-])eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}/, {
    window: 48,
    requires: 'eyJ',
    pending: /(?<![\w-])eyJ[A-Za-z0-9_.-]*$/,
    pendingRequires: 'eyJ'
  })
}
