/**
 * The OpenAI Responses API (`POST /v1/responses`) in terms of the canonical chat shapes: requests are translated
 * to chat completions for every target, answers and streams back to Response objects and Response events.
 */
export * from './request.js'
export * from './response.js'
export * from './stream.js'
