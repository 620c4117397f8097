/**
 * A copy of the gateway's build with a named mark at each stage of a chat request's way to its upstream call, for
 * bench/ttfb-segments.ts: each mark calls the phase-marks preload (`globalThis.__phaseMark`, bench/lib/phase-marks.mjs),
 * which reports every name's median µs after the request's arrival. The marks go into the built JavaScript of a
 * copy, never into src/: the gateway itself carries no such calls.
 */
import { cp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/** One mark: `name` noted when the request passes the line after (or before) `anchor` in `file` of the build. */
export interface SegmentMark {
  file: string
  anchor: string
  name: string
  before?: boolean
}

/**
 * The stages of a chat completion, in the order a request meets them. Anchors are lines of the built JavaScript
 * (tsc's output of src/ and routes/): when one changes, `markBuild` says which, and this list is updated with it.
 */
export const CHAT_SEGMENTS: readonly SegmentMark[] = [
  { file: 'routes/openai.js', anchor: "app.post('/chat/completions', async (c) => {", name: 'route' },
  { file: 'routes/openai.js', anchor: 'const principal = await gateway.identify(incoming);', name: 'key identified' },
  { file: 'routes/openai.js', anchor: 'const body = await readBody(c, chatRequestSchema);', name: 'body read and checked' },
  { file: 'src/gateway.js', anchor: 'const result = await run(ctx);', name: 'context made', before: true },
  { file: 'src/guardrails/input.js', anchor: 'rec.flush();', name: 'input guards', before: true },
  { file: 'src/cache/step.js', anchor: "const key = exactCacheKey({ tenant, alias: ctx.alias, route, request: ctx.request, inProcess: deps.store.kind === 'memory' });", name: 'exact key' },
  { file: 'src/cache/step.js', anchor: "metrics?.request('exact', 'miss', team);", name: 'exact read (miss)' },
  { file: 'src/cache/step.js', anchor: 'const pending = pendingScopes.get(sem.query.scope);', name: 'semantic scope', before: true },
  { file: 'src/cache/semantic.js', anchor: 'const [vector] = await embedder.embed([query.text], opts.signal);', name: 'embedded' },
  { file: 'src/cache/step.js', anchor: 'sem.vector = found.vector;', name: 'index searched' },
  { file: 'src/budget/admit.js', anchor: 'return proceed(ctx, planned, await admission.admit(ctx, planned.estimate, planned.opts), next);', name: 'budgets planned', before: true },
  { file: 'src/budget/admit.js', anchor: 'const result = await next();', name: 'budgets reserved', before: true },
  { file: 'src/providers/http.js', anchor: 'async post(path, body, call) {', name: 'provider call' }
]

/** The line a mark inserts. */
const markLine = (name: string) => `globalThis.__phaseMark?.(${JSON.stringify(name)});`

/**
 * Copy the build in `dist` to `out` (replaced) and insert `marks`, each once, at the first occurrence of its
 * anchor. Throws, naming the file and the anchor, when an anchor is not in its file.
 *
 * @example
 * await markBuild('dist', 'node_modules/.ab/segments', CHAT_SEGMENTS)
 */
export async function markBuild(dist: string, out: string, marks: readonly SegmentMark[]): Promise<void> {
  await rm(out, { recursive: true, force: true })
  await cp(dist, out, { recursive: true })
  const byFile = new Map<string, SegmentMark[]>()
  for (const m of marks) byFile.set(m.file, [...(byFile.get(m.file) ?? []), m])
  for (const [file, list] of byFile) {
    const path = join(out, file)
    let text = await readFile(path, 'utf8')
    for (const m of list) {
      const at = text.indexOf(m.anchor)
      if (at < 0) throw new Error(`segment mark "${m.name}": ${file} of ${dist} has no line "${m.anchor}" (update bench/lib/segments.ts)`)
      const insert = m.before ? `${markLine(m.name)}\n` : `\n${markLine(m.name)}`
      const where = m.before ? at : at + m.anchor.length
      text = text.slice(0, where) + insert + text.slice(where)
    }
    await writeFile(path, text)
  }
}
