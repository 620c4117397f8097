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
const REASONING = /\b(why|explain|derive|compare|analy[sz]e|evaluate|justify|step by step|implies|therefore|suppose|assume|if and only if)\b/gi
const NEGATION = /\b(not|except|least|false|incorrect|never)\b/gi
const DIGITS = /\d/g
// Shapes of multiple-choice exam questions (MMLU's own phrasing): kept as features, unused by the built-in
// weights, because they would tune the scorer to the very benchmark it is evaluated on.
const WHICH_OF_THE_FOLLOWING = /\bwhich of the following (is|are) (not|true|false|correct)\b/gi
const STATEMENT_PAIR = /statement\s*1[\s\S]*statement\s*2/i

/** What the feature scorers look at, computed from the last user message, the tools and the turn count. */
export interface PromptFeatures {
  /** log(1 + characters / 200) */
  length: number
  math: number
  code: number
  reasoning: number
  negation: number
  /** Share of digits, capped at 0.25. */
  digitShare: number
  /** "Which of the following is not/true/false/correct" (exam phrasing). */
  whichOfTheFollowing: number
  /** "Statement 1 … Statement 2" pairs (exam phrasing). */
  statementPair: number
  tools: number
  /** Earlier messages, capped at 10. */
  turns: number
}

export type FeatureWeights = { bias: number } & { [K in keyof PromptFeatures]: number }

/**
 * The features of a prompt, for the built-in scorer or a scorer with fitted weights (`featureScorer`).
 *
 * @example
 * promptFeatures({ messages: [{ role: 'user', content: 'Solve 3x + 5 = 20' }] }).math // 2
 */
export function promptFeatures(req: Pick<ChatRequest, 'messages' | 'tools'>): PromptFeatures {
  const text = lastUserText(req)
  const chars = text.length
  const count = (re: RegExp) => (text.match(re) ?? []).length
  return {
    length: Math.log1p(chars / 200),
    math: Math.min(4, count(MATH)),
    code: Math.min(4, count(CODE)),
    reasoning: Math.min(3, count(REASONING)),
    negation: Math.min(3, count(NEGATION)),
    digitShare: chars ? Math.min(0.25, count(DIGITS) / chars) : 0,
    whichOfTheFollowing: Math.min(1, count(WHICH_OF_THE_FOLLOWING)),
    statementPair: STATEMENT_PAIR.test(text) ? 1 : 0,
    tools: req.tools?.length ? 1 : 0,
    turns: Math.min(10, Math.max(0, req.messages.length - 1))
  }
}

/**
 * A logistic scorer over `promptFeatures` with the given weights (e.g. weights fitted on your own traffic).
 *
 * @example
 * registerScorer('fitted', featureScorer({ ...BUILTIN_WEIGHTS, length: 0.8 }))
 */
export function featureScorer(weights: FeatureWeights): DifficultyScorer {
  return (req) => {
    const f = promptFeatures(req)
    let z = weights.bias
    for (const k of Object.keys(f) as (keyof PromptFeatures)[]) z += weights[k] * f[k]
    return 1 / (1 + Math.exp(-z))
  }
}

/**
 * Hand-set weights of the built-in scorer: what makes prompts hard for small models (length, math, code,
 * reasoning markers, negations, digits, tools, long conversations). The exam-phrasing features weigh 0.
 */
export const BUILTIN_WEIGHTS: FeatureWeights = {
  bias: -2.2,
  length: 0.45,
  math: 0.55,
  code: 0.45,
  reasoning: 0.3,
  negation: 0.2,
  digitShare: 6,
  whichOfTheFollowing: 0,
  statementPair: 0,
  tools: 0.5,
  turns: 0.1
}

/**
 * The built-in difficulty scorer: `featureScorer(BUILTIN_WEIGHTS)`. No model, microseconds per prompt.
 * Weights were set by hand, not fitted; its measured signal is weak (README, Routing).
 *
 * @example
 * builtinScorer({ messages: [{ role: 'user', content: 'Solve 3x + 5 = 20 for x.' }] }) // ≈ 0.49
 */
export const builtinScorer: DifficultyScorer = featureScorer(BUILTIN_WEIGHTS)

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
