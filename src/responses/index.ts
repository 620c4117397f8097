/**
 * The OpenAI Responses API (`POST /v1/responses`) in terms of the canonical chat shapes: requests are translated
 * to chat completions for chat-only targets, answers and streams back to Response objects and Response events;
 * OpenAI targets get the client's body as sent, their answers read back for accounting (upstream.ts).
 */
export * from './request.js'
export * from './response.js'
export * from './stream.js'
export * from './upstream.js'
