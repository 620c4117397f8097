import { spawn } from 'node:child_process'
import { request } from 'undici'
import { chatBody } from './lib/bodies.js'
import { BENCH_HEADERS, startBackends, startSluice, startFloor } from './lib/targets.js'
import type { Child } from './lib/procs.js'
const children: Child[] = []
const { upstream } = await startBackends('memory', children)
const s = process.env.TARGET === 'floor' ? await startFloor(upstream) : await startSluice('sluice-memory', { upstream })
children.push(s)
const body = chatBody({ model: process.env.TARGET === 'floor' ? 'gpt-4o-mini@tokens=500' : 'bench-long', maxTokens: 500, mode: 'unique', stream: true })
const one = async (i: number) => { const r = await request(`http://127.0.0.1:${s.port}/v1/chat/completions`, { method: 'POST', headers: BENCH_HEADERS, body: body(i) }); let n = 0; for await (const c of r.body) n += c.length; return n }
for (let i = 0; i < 20; i++) await one(i)
const st = spawn('strace', ['-c', '-f', '-p', String(s.pid), '-o', `/tmp/st-${process.env.TARGET ?? 'sluice'}.txt`], { stdio: 'ignore' })
await new Promise((r) => setTimeout(r, 500))
let bytes = 0
for (let i = 100; i < 150; i++) bytes += await one(i)
await new Promise((r) => setTimeout(r, 200))
st.kill('SIGINT'); await new Promise((r) => st.on('exit', r))
console.log('bytes per stream', bytes / 50)
for (const c of children.reverse()) await c.stop()
