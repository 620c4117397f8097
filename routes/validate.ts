import type { Context } from 'hono'
import { z } from 'zod'
import { GatewayError } from '../src/errors.js'
import { requestHeader, requestText } from './incoming.js'

/**
 * Read a JSON body and validate it with zod, turning every failure into an OpenAI-style 400
 * that names the offending field.
 *
 * @example
 * const body = await readBody(c, chatRequestSchema)
 */
export async function readBody<T extends z.ZodType>(c: Context, schema: T): Promise<z.infer<T>> {
  const type = requestHeader(c, 'content-type') ?? ''
  if (type && !/^application\/(.+\+)?json\b/i.test(type)) {
    throw new GatewayError(415, `Content-Type must be application/json, got "${type.slice(0, 60)}".`, { code: 'unsupported_media_type' })
  }
  let raw: unknown
  try {
    raw = JSON.parse(await requestText(c))
  } catch (err) {
    if (err instanceof GatewayError) throw err
    throw new GatewayError(400, 'We could not parse the JSON body of your request. Send valid JSON (Content-Type: application/json).', { code: 'invalid_json' })
  }
  const result = schema.safeParse(raw)
  if (!result.success) {
    const issue = result.error.issues[0]!
    const param = issue.path.join('.') || null
    throw new GatewayError(400, `Invalid request${param ? ` at '${param}'` : ''}: ${issue.message}.`, { code: 'invalid_request', param })
  }
  return result.data
}

const contentPart = z.looseObject({ type: z.string() })
const message = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool']),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
  name: z.string().optional(),
  tool_calls: z.array(z.looseObject({ id: z.string(), type: z.literal('function'), function: z.looseObject({ name: z.string(), arguments: z.string() }) })).optional(),
  tool_call_id: z.string().optional()
})
const tokens = z.number().int().positive().max(10_000_000).nullable().optional()

/** The chat-completions request: checked where Sluice relies on a field, passed through otherwise. */
export const chatRequestSchema = z.looseObject({
  model: z.string().min(1).max(256),
  messages: z.array(message).min(1).max(100_000),
  stream: z.boolean().nullable().optional(),
  stream_options: z.looseObject({ include_usage: z.boolean().optional() }).nullable().optional(),
  max_tokens: tokens,
  max_completion_tokens: tokens,
  n: z.number().int().min(1).max(128).nullable().optional(),
  temperature: z.number().min(0).max(2).nullable().optional(),
  top_p: z.number().min(0).max(1).nullable().optional(),
  tools: z.array(z.looseObject({ type: z.string(), function: z.looseObject({ name: z.string() }).optional() })).max(1024).optional(),
  user: z.string().max(512).optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  response_format: z.looseObject({ type: z.enum(['text', 'json_object', 'json_schema']) }).optional()
})

export const embeddingRequestSchema = z.looseObject({
  model: z.string().min(1).max(256),
  input: z.union([z.string(), z.array(z.string()).min(1).max(2048), z.array(z.number().int()).min(1), z.array(z.array(z.number().int()).min(1)).min(1).max(2048)]),
  encoding_format: z.enum(['float', 'base64']).optional(),
  dimensions: z.number().int().positive().optional(),
  user: z.string().optional()
})
