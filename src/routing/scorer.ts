import type { ChatRequest } from '../types.js'
import { lastUserText } from './checks.js'

/** Scores how hard a prompt looks, in [0, 1]; higher means "send it to a stronger model". */
export type DifficultyScorer = (req: Pick<ChatRequest, 'messages' | 'tools'>) => number

const scorers = new Map<string, DifficultyScorer>()

/**
 * Register a scorer under a name that policies can use (`router: { kind: score, scorer: NAME }`), e.g. one
 * backed by a trained classifier.
 *
 * @example
 * registerScorer('length', (req) => Math.min(1, JSON.stringify(req.messages).length / 4000))
 */
export function registerScorer(name: string, scorer: DifficultyScorer): void {
  scorers.set(name, scorer)
}

export function scorerNamed(name: string): DifficultyScorer | undefined {
  return scorers.get(name)
}

// Markers that correlate with multi-step reasoning: arithmetic, formulas, code, proofs.
const MATH = /(\d+\s*[-+*/^=<>]\s*\d+|\\frac|\\sqrt|sqrt\(|\bintegral\b|\bderivative\b|\bprobability\b|\bequation\b|\bsolve\b|\bcompute\b|\bcalculate\b|\bprove\b|\btheorem\b|\bmatrix\b|\bpolynomial\b|\bmod\b|\blog\b|\bexpected value\b|[∫∑√π≤≥≠])/gi
const CODE = /(```|\bfunction\b|\bdef |\breturn\b|=>|;\s*$|\bclass \w|\bimport \w|\bSELECT\b|#include|\bvoid\b|\bint \w+\s*[=(;]|\bprintf\b|\bconsole\.)/gim
const REASONING = /\b(why|explain|derive|compare|analy[sz]e|evaluate|justify|step by step|implies|therefore|suppose|assume|if and only if|which of the following (is|are) (not|true|false|correct))\b/gi
const NEGATION = /\b(not|except|least|false|incorrect|never)\b/gi
const DIGITS = /\d/g
const STATEMENT_PAIR = /statement\s*1[\s\S]*statement\s*2/i

/**
 * The built-in difficulty scorer: a fixed logistic combination of prompt features (length, digits, math,
 * code and reasoning markers, negations, "Statement 1 | Statement 2" pairs, tools). No model, microseconds
 * per prompt. Weights were set by hand from what makes prompts hard for small models, not fitted to the
 * evaluation set.
 *
 * @example
 * builtinScorer({ messages: [{ role: 'user', content: 'Solve 3x + 5 = 20 for x.' }] }) // ≈ 0.6
 */
export const builtinScorer: DifficultyScorer = (req) => {
  const text = lastUserText(req)
  const chars = text.length
  const count = (re: RegExp) => (text.match(re) ?? []).length
  const digitShare = chars ? count(DIGITS) / chars : 0
  let z = -2.2
  z += 0.45 * Math.log1p(chars / 200)
  z += 0.55 * Math.min(4, count(MATH))
  z += 0.45 * Math.min(4, count(CODE))
  z += 0.3 * Math.min(3, count(REASONING))
  z += 0.2 * Math.min(3, count(NEGATION))
  z += 6 * Math.min(0.25, digitShare)
  if (STATEMENT_PAIR.test(text)) z += 0.8
  if (req.tools?.length) z += 0.5
  const turns = req.messages.length
  z += 0.1 * Math.min(10, Math.max(0, turns - 1))
  return 1 / (1 + Math.exp(-z))
}

registerScorer('builtin', builtinScorer)

/**
 * The tier a score router starts a cascade at: with one threshold, the last tier at or above it, else the
 * first; with an ascending list, the number of thresholds the score reaches.
 *
 * @example
 * startTier(0.8, 0.6, 3) // 2
 * startTier(0.5, [0.3, 0.7], 3) // 1
 */
export function startTier(score: number, threshold: number | number[], tiers: number): number {
  if (typeof threshold === 'number') return score >= threshold ? tiers - 1 : 0
  const reached = threshold.filter((t) => score >= t).length
  return Math.min(tiers - 1, reached)
}
