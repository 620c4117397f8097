import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import ts from 'typescript'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CHAT_SEGMENTS, markBuild } from '../bench/lib/segments.js'

// bench/ttfb-segments.ts marks the stages of a request in a copy of the build: the copy gets the marks, the build
// does not, a missing anchor is named, and every anchor of CHAT_SEGMENTS is in what tsc makes of today's sources.
describe('markBuild (bench/ttfb-segments.ts)', () => {
  let dir: string
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'sluice-segments-test-'))
    await mkdir(join(dir, 'dist', 'src'), { recursive: true })
    await writeFile(join(dir, 'dist', 'src', 'a.js'), 'function f() {\n  step1();\n  step2();\n}\n')
  })
  afterAll(() => rm(dir, { recursive: true, force: true }))

  it('inserts each mark once, after its anchor or before it, in a copy', async () => {
    const out = join(dir, 'marked')
    await markBuild(join(dir, 'dist'), out, [
      { file: 'src/a.js', anchor: 'step1();', name: 'one' },
      { file: 'src/a.js', anchor: 'step2();', name: 'before two', before: true }
    ])
    expect(await readFile(join(out, 'src', 'a.js'), 'utf8')).toBe(
      'function f() {\n  step1();\nglobalThis.__phaseMark?.("one");\n  globalThis.__phaseMark?.("before two");\nstep2();\n}\n'
    )
    expect(await readFile(join(dir, 'dist', 'src', 'a.js'), 'utf8')).not.toContain('__phaseMark')
  })

  it('names the mark and the anchor that are not in the build', async () => {
    await expect(markBuild(join(dir, 'dist'), join(dir, 'marked2'), [{ file: 'src/a.js', anchor: 'step3();', name: 'three' }])).rejects.toThrow(
      /segment mark "three": src\/a\.js of .* has no line "step3\(\);"/
    )
  })

  it("finds every anchor of the chat stages in tsc's output of the sources", async () => {
    // the package is ESM ("type": "module"): the build emits ES modules, as ESNext does here
    const options = { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext }
    for (const m of CHAT_SEGMENTS) {
      const source = await readFile(new URL(`../${m.file.replace(/\.js$/, '.ts')}`, import.meta.url), 'utf8')
      const built = ts.transpileModule(source, { compilerOptions: options, fileName: m.file.replace(/\.js$/, '.ts') }).outputText
      expect(built.includes(m.anchor), `${m.name}: "${m.anchor}" in ${m.file}`).toBe(true)
    }
  })
})
