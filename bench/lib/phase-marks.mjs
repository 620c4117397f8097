/**
 * Where a server's time to first byte goes, read from outside its code: a preload for any Node server that
 * calls its upstream with undici (the floor, Sluice, a reference server).
 *
 *   node --import ./bench/lib/phase-marks.mjs dist/src/cli.js start …   # then: kill -USR2 <pid>
 *
 * Per request it notes five moments: arrival (node:http's `http.server.request.start`), the upstream call's
 * headers sent (undici's `undici:client:sendHeaders`), the upstream's response headers (`undici:request:headers`),
 * the first bytes written to the response (the first `write`/`end` with data on the ServerResponse; Node sends a
 * response's head with its first body bytes), and the response socket's own first write of them (after Node's
 * cork). Requests must come one at a time, as bench/ttfb-phases.ts
 * sends them: marks go to the request in flight, and a request that overlapped another is counted apart and
 * left out. On SIGUSR2 the medians of the requests since the last report are written as JSON to the file named
 * by PHASE_MARKS_OUT, and counting starts over. With PHASE_MARKS_ROWS set, the counted requests' own moments go
 * to that file too, as µs of the monotonic clock a V8 CPU profile's timestamps use (bench/ttfb-profile.ts reads
 * them to keep only the profile's samples inside a phase). Nothing else about the server changes.
 *
 * Written in plain JavaScript so the built gateway (plain node, no loader) can preload it.
 */
import dc from 'node:diagnostics_channel'
import { writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'

/** @type {{ arrive: number, socket: unknown, sent?: number, upstream?: number, first?: number, wire?: number, marks?: Record<string, number>, overlapped: boolean } | undefined} */
let current
let inFlight = 0
/** @type {{ arrive: number, sent?: number, upstream?: number, first?: number, wire?: number, marks?: Record<string, number> }[]} */
let rows = []
let overlapped = 0

dc.subscribe('http.server.request.start', ({ response, socket }) => {
  inFlight++
  if (current && inFlight > 1) current.overlapped = true
  const row = { arrive: performance.now(), socket, overlapped: inFlight > 1 }
  current = row
  response.once('close', () => {
    inFlight--
    row.socket = undefined
    if (row.overlapped) overlapped++
    else rows.push(row)
  })
})

/** @param {'sent' | 'upstream' | 'first' | 'wire'} name */
const mark = (name) => {
  if (current && current[name] === undefined) current[name] = performance.now()
}
/**
 * A named moment of the request in flight, for builds that call it (bench/lib/segments.ts inserts such calls into a
 * copy of the gateway's build): the report gives each name's median µs after arrival under `marks`.
 * @param {string} name
 */
globalThis.__phaseMark = (name) => {
  if (!current) return
  current.marks ??= {}
  if (current.marks[name] === undefined) current.marks[name] = performance.now()
}
dc.subscribe('undici:client:sendHeaders', () => mark('sent'))
dc.subscribe('undici:request:headers', () => mark('upstream'))

const { write, end } = http.ServerResponse.prototype
http.ServerResponse.prototype.write = function (chunk, ...rest) {
  mark('first')
  return write.call(this, chunk, ...rest)
}
http.ServerResponse.prototype.end = function (chunk, ...rest) {
  if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') mark('first')
  return end.call(this, chunk, ...rest)
}

// Node corks a response's socket at its first write and uncorks it on the next tick: the bytes leave when the
// socket's own write runs, after whatever else was queued before that tick
const { _writeGeneric } = net.Socket.prototype
net.Socket.prototype._writeGeneric = function (...args) {
  if (current && this === current.socket) mark('wire')
  return _writeGeneric.apply(this, args)
}

/** Median of the defined differences, in µs. @param {(number | undefined)[]} xs */
const medianMicros = (xs) => {
  const v = /** @type {number[]} */ (xs.filter((x) => x !== undefined && Number.isFinite(x))).sort((a, b) => a - b)
  return v.length ? Math.round(v[v.length >> 1] * 1000) : null
}
const diff = (a, b) => (a === undefined || b === undefined ? undefined : b - a)

// performance.now() and a CPU profile's timestamps (V8's monotonic ticks, as process.hrtime) differ by a constant.
// The first performance.now() sets itself up for about a millisecond: read the offset around a later call.
performance.now()
const hrBefore = process.hrtime.bigint()
const nowMs = performance.now()
const PROFILE_CLOCK_US = Number((hrBefore + process.hrtime.bigint()) / 2000n) - nowMs * 1000
/** @param {number | undefined} ms */
const onProfileClock = (ms) => (ms === undefined ? null : Math.round(PROFILE_CLOCK_US + ms * 1000))

process.on('SIGUSR2', () => {
  const report = {
    requests: rows.length,
    overlapped,
    // µs medians; the upstream phases are null for requests that never called one (a cache hit, a refusal)
    beforeUpstream: medianMicros(rows.map((r) => diff(r.arrive, r.sent))),
    upstream: medianMicros(rows.map((r) => diff(r.sent, r.upstream))),
    afterUpstream: medianMicros(rows.map((r) => diff(r.upstream, r.first))),
    firstByte: medianMicros(rows.map((r) => diff(r.arrive, r.first))),
    // from the first write call to the socket's write: the cork, and what ran before the tick that lifted it
    corked: medianMicros(rows.map((r) => diff(r.first, r.wire))),
    // µs after arrival of each named moment some request passed (builds with marks inserted), in order of the median
    marks: Object.fromEntries(
      [...new Set(rows.flatMap((r) => Object.keys(r.marks ?? {})))]
        .map((name) => [name, medianMicros(rows.map((r) => diff(r.arrive, r.marks?.[name])))])
        .sort((a, b) => (a[1] ?? 0) - (b[1] ?? 0))
    )
  }
  const rowsOut = process.env.PHASE_MARKS_ROWS
  if (rowsOut) {
    const moments = rows.map((r) => ({ arrive: onProfileClock(r.arrive), sent: onProfileClock(r.sent), upstream: onProfileClock(r.upstream), first: onProfileClock(r.first) }))
    writeFileSync(rowsOut, JSON.stringify(moments))
  }
  rows = []
  overlapped = 0
  const out = process.env.PHASE_MARKS_OUT
  if (out) writeFileSync(out, JSON.stringify(report))
})
