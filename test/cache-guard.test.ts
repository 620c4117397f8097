import { describe, expect, it } from 'vitest'
import { meaningFlip } from '../src/cache/guard.js'

describe('meaningFlip', () => {
  it.each([
    ['how do I enable 2FA on my account', 'how do I disable 2FA on my account', 'polar'],
    ['Enabling dark mode in settings', 'disabling dark mode in settings', 'polar'],
    ['is the service running', 'is the service not running', 'negation'],
    ["why doesn't my build pass", 'why does my build pass', 'negation'],
    ['users who never logged in', 'users who logged in', 'negation'],
    ['list the top 5 customers', 'list the top 10 customers', 'number'],
    ['list the top five customers', 'list the top 10 customers', 'number'],
    ['set the timeout to 1,000 ms', 'set the timeout to 100 ms', 'number'],
    ['upgrade to version 2.1', 'upgrade to version 2.2', 'number'],
    ['how do I lock the screen', 'how do I unlock the screen', 'polar'],
    ['is this a blocking call', 'is this a nonblocking call', 'prefix'],
    ['is the file readable', 'is the file unreadable', 'prefix'],
    ['sort the rows ascending', 'sort the rows descending', 'polar'],
    ['what does `parseConfig` return', 'what does `parseConfigFile` return', 'identifier'],
    ['explain user_id in the schema', 'explain group_id in the schema', 'identifier'],
    // the same words swapped around a relational word: word sets are equal, embeddings score 0.87–0.91
    ['Translate this sentence from English to French', 'Translate this sentence from French to English', 'order'],
    ['convert 30 celsius to fahrenheit', 'convert 30 fahrenheit to celsius', 'order'],
    ['Is Python faster than Java?', 'Is Java faster than Python?', 'order'],
    ['difference between TCP and UDP', 'difference between UDP and TCP', 'order'],
    ['copy the files from staging into production', 'copy the files from production into staging', 'order'],
    ['replace tabs with spaces in this file', 'replace spaces with tabs in this file', 'order'],
    ['Should I pick Postgres over MySQL for this?', 'Should I pick MySQL over Postgres for this?', 'order']
  ])('%s / %s → %s', (a, b, kind) => {
    expect(meaningFlip(a, b)?.kind).toBe(kind)
    expect(meaningFlip(b, a)?.kind).toBe(kind)
  })

  it.each([
    ['How do I reset my password?', 'how can I reset my password'],
    ['What is the capital of France?', 'what is the capital of france'],
    ['list the top 5 customers', 'show the top 5 customers'],
    ['How to enable 2FA', 'How do I enable 2FA?'],
    ["I can't log in", 'I cannot log in'],
    // the same order, or words moved without crossing a relational word, is no flip
    ['translate this sentence from English to French', 'please translate this sentence from English to French'],
    ['Is Python faster than Java?', 'is python faster than java'],
    ['convert 30 celsius to fahrenheit', 'convert 30 celsius into fahrenheit'],
    ['in 2020 how did sales grow', 'how did sales grow in 2020']
  ])('%s / %s → no flip', (a, b) => {
    expect(meaningFlip(a, b)).toBeUndefined()
    expect(meaningFlip(b, a)).toBeUndefined()
  })

  it('names the swapped words of an order flip', () => {
    expect(meaningFlip('Is Python faster than Java?', 'Is Java faster than Python?')).toEqual({ kind: 'order', tokens: ['python', 'than', 'java'] })
  })
})
