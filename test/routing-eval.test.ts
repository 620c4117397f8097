import { describe, expect, it } from 'vitest'
import { auc, evaluateHeldOut, fitWeights, splitBySubject, thresholdForShare, type Labelled } from '../bench/router-eval.js'
import { BUILTIN_WEIGHTS, builtinScorer, featureScorer, promptFeatures } from '../src/routing/scorer.js'

const item = (subject: string, prompt: string, weak: boolean, strong: boolean): Labelled => ({ subject, prompt, weak, strong })
const ask = (content: string) => ({ messages: [{ role: 'user' as const, content }] })

describe('router evaluation (bench/router-eval.ts)', () => {
  it('splits whole subjects into disjoint dev and test halves, the same way every time', () => {
    const items = Array.from({ length: 40 }, (_, i) => item(`s${i % 10}`, `q${i}`, true, true))
    const a = splitBySubject(items)
    const b = splitBySubject([...items].reverse())
    expect(a.devSubjects).toEqual(b.devSubjects)
    expect(a.devSubjects).toHaveLength(5)
    expect(a.testSubjects).toHaveLength(5)
    expect(a.devSubjects.some((s) => a.testSubjects.includes(s))).toBe(false)
    expect(a.dev.length + a.test.length).toBe(40)
    expect(a.test.every((x) => a.testSubjects.includes(x.subject))).toBe(true)
  })

  it('chooses a threshold for a share on one set and reports another set next to random at the share reached there', () => {
    expect(thresholdForShare([0.1, 0.9, 0.5, 0.7], 0.5)).toBe(0.7)
    expect(thresholdForShare([0.1, 0.9], 0)).toBe(Infinity)
    // weak right on the first two, strong right everywhere; scores send the last two up
    const test = [item('t', 'a', true, true), item('t', 'b', true, true), item('t', 'c', false, true), item('t', 'd', false, true)]
    const row = evaluateHeldOut(test, [0.1, 0.2, 0.8, 0.9], 0.3, 0.5)
    expect(row.testShare).toBe(0.5)
    expect(row.accuracy).toBe(1)
    expect(row.randomAccuracy).toBe(0.75)
  })

  it('computes AUC with ties as half', () => {
    const xs = [item('t', 'a', false, true), item('t', 'b', true, true), item('t', 'c', true, true)]
    expect(auc(xs, [0.9, 0.1, 0.2])).toBe(1)
    expect(auc(xs, [0.1, 0.5, 0.9])).toBe(0)
    expect(auc(xs, [0.5, 0.5, 0.5])).toBe(0.5)
  })

  it('fits weights that rank the prompts worth sending up first on the data they were fitted on', () => {
    // long prompts: the weak model fails and the strong one succeeds; short ones: both succeed
    const dev = Array.from({ length: 60 }, (_, i) => (i % 2 ? item('d', 'word '.repeat(200), false, true) : item('d', 'short', true, true)))
    const scorer = featureScorer(fitWeights(dev, ['length', 'negation']))
    expect(scorer(ask('word '.repeat(200)))).toBeGreaterThan(scorer(ask('short')))
  })
})

describe('built-in scorer', () => {
  it('ignores exam phrasing (it would tune the scorer to MMLU), which the features still expose', () => {
    const plain = 'Consider the claims about groups below.'
    const exam = 'Statement 1 | Every group is abelian. Statement 2 | Which of the following is true'
    expect(promptFeatures(ask(exam))).toMatchObject({ statementPair: 1, whichOfTheFollowing: 1 })
    expect(BUILTIN_WEIGHTS.statementPair).toBe(0)
    expect(BUILTIN_WEIGHTS.whichOfTheFollowing).toBe(0)
    const withExam = featureScorer({ ...BUILTIN_WEIGHTS, statementPair: 0.8, whichOfTheFollowing: 0.3 })
    expect(withExam(ask(exam))).toBeGreaterThan(builtinScorer(ask(exam)))
    expect(builtinScorer(ask(plain))).toBeGreaterThan(0)
  })

  it('scores math and code above small talk', () => {
    expect(builtinScorer(ask('Solve 3x + 5 = 20 for x and compute the derivative.'))).toBeGreaterThan(builtinScorer(ask('hi there')))
    expect(builtinScorer(ask('Solve 3x + 5 = 20 for x.'))).toBeCloseTo(0.488, 2)
  })
})
