import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js'

export interface JsonSchemaResult {
  valid: boolean
  /** Human-readable problems, e.g. `/age: must be integer`; empty when valid. */
  errors: string[]
}

// One validator for all schemas: draft 2020-12 (what OpenAI's structured outputs use), lenient about
// keywords it does not know, formats not enforced (no format vocabulary is loaded).
const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: false, logger: false })

/** Compiled validators by schema text; bounded so clients sending ever-new schemas cannot grow it. */
const compiled = new Map<string, ValidateFunction | Error>()
const MAX_COMPILED = 256

function validatorFor(schema: Record<string, unknown>): ValidateFunction | Error {
  const key = JSON.stringify(schema)
  const hit = compiled.get(key)
  if (hit) {
    compiled.delete(key)
    compiled.set(key, hit)
    return hit
  }
  let v: ValidateFunction | Error
  try {
    v = ajv.compile(schema)
  } catch (err) {
    v = err instanceof Error ? err : new Error(String(err))
  } finally {
    // Ajv caches by schema object (and $id); our cache is by text, so drop Ajv's copy.
    try {
      ajv.removeSchema(schema)
    } catch {
      // nothing was registered
    }
  }
  compiled.set(key, v)
  if (compiled.size > MAX_COMPILED) compiled.delete(compiled.keys().next().value!)
  return v
}

/**
 * Validates a value against a JSON Schema (draft 2020-12; `$defs`/`$ref`, `anyOf`, `enum`,
 * `additionalProperties`...). Compiled validators are cached by schema text.
 *
 * @example
 * validateJsonSchema({ type: 'object', properties: { n: { type: 'integer' } }, required: ['n'] }, { n: 'x' })
 * // { valid: false, errors: ['/n: must be integer'] }
 */
export function validateJsonSchema(schema: Record<string, unknown>, value: unknown): JsonSchemaResult {
  const v = validatorFor(schema)
  if (v instanceof Error) return { valid: false, errors: [`the schema itself is invalid: ${v.message}`] }
  if (v(value)) return { valid: true, errors: [] }
  return {
    valid: false,
    errors: (v.errors ?? []).map((e) => `${e.instancePath || '/'}: ${e.message ?? 'is invalid'}`)
  }
}

/**
 * Parses an answer's text as JSON and validates it; a text that is not JSON is one error.
 *
 * @example
 * validateJsonAnswer({ type: 'object' }, '{"a":1}') // { valid: true, errors: [] }
 */
export function validateJsonAnswer(schema: Record<string, unknown>, text: string): JsonSchemaResult {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { valid: false, errors: ['the answer is not valid JSON'] }
  }
  return validateJsonSchema(schema, value)
}
