/**
 * bench/RESULTS.md is shared by several scripts: each owns one marked section and rewrites only that,
 * so hand-written notes (the history of hot-path improvements) survive every run.
 */
import { execFileSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { cpus, release, totalmem } from 'node:os'
import { dirname, join } from 'node:path'

export const RESULTS_FILE = join(import.meta.dirname, '..', 'RESULTS.md')

const HEADER = `# Benchmark results

Produced by the scripts in bench/ (see README, Performance): \`npm run bench\` (about 10 minutes) or
\`npm run bench -- --quick\` (about 1 minute), \`node --import tsx bench/semantic.ts\`, and
\`node --import tsx bench/soak.ts --write\`. Each rewrites only its own marked section.
`

/** One line naming when and where a measurement ran. */
export function machineLine(): string {
  let commit = 'none'
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: dirname(RESULTS_FILE), encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    // not a git checkout
  }
  return `Run ${new Date().toISOString()} on ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}, Node ${process.version}, commit ${commit}.`
}

/**
 * Replace the section `id` of a results file (created with a header and a History section if absent).
 *
 * @example
 * await writeSection(RESULTS_FILE, 'semantic', '## Semantic lookup', table)
 */
export async function writeSection(file: string, id: string, title: string, body: string): Promise<void> {
  const begin = `<!-- ${id}:begin (written by a bench script; edit outside these markers) -->`
  const end = `<!-- ${id}:end -->`
  const block = `${begin}\n${title}\n\n${body.trim()}\n${end}`
  let text = existsSync(file)
    ? await readFile(file, 'utf8')
    : `${HEADER}\n## History\n\nImprovements to the hot path, each with its before/after ratio to the floor.\n`
  const a = text.indexOf(begin)
  const b = text.indexOf(end)
  if (a >= 0 && b > a) text = text.slice(0, a) + block + text.slice(b + end.length)
  else {
    // New sections go before the hand-written history.
    const h = text.indexOf('\n## History')
    text = h >= 0 ? `${text.slice(0, h)}\n${block}\n${text.slice(h)}` : `${text.trimEnd()}\n\n${block}\n`
  }
  await mkdir(dirname(file), { recursive: true })
  await writeFile(file, text)
}
