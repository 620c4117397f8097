/**
 * A loopback stand-in for the Qdrant REST API, enough of it for Sluice's `VectorIndex` adapter: collections
 * (exists, create, get), payload indexes, upsert, query and search with `must` filters (match value, range),
 * delete by ids or filter, count. It answers in Qdrant's JSON shape (`{ result, status: 'ok', time }`,
 * errors as `{ status: { error } }`) and records every request, so tests can drive the real
 * @qdrant/js-client-rest client against it and check what it sends.
 */
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface QdrantRequest {
  method: string
  /** Path without the query string, e.g. `/collections/c/points/query`. */
  path: string
  query: Record<string, string>
  body: any
  headers: Record<string, string | string[] | undefined>
}

interface Point {
  id: string | number
  vector: number[]
  payload: Record<string, unknown>
}

interface Collection {
  size: number
  distance: string
  points: Map<string | number, Point>
  indexes: Record<string, string>
}

type Condition = { key: string; match?: { value: unknown }; range?: { gt?: number; gte?: number; lt?: number; lte?: number } }
type Filter = { must?: Condition[] }

export interface FakeQdrant {
  url: string
  requests: QdrantRequest[]
  collections: Map<string, Collection>
  close(): Promise<void>
}

/**
 * @example
 * const qdrant = await startFakeQdrant()
 * const index = createQdrantIndex({ url: qdrant.url, dimensions: 256 })
 * await index.init() // qdrant.requests: GET …/exists, PUT /collections/…, GET /collections/…, PUT …/index ×2
 */
export async function startFakeQdrant(): Promise<FakeQdrant> {
  const requests: QdrantRequest[] = []
  const collections = new Map<string, Collection>()

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake')
    const raw = await readBody(req)
    let body: any
    try {
      body = raw ? JSON.parse(raw) : undefined
    } catch {
      body = raw
    }
    requests.push({ method: req.method ?? 'GET', path: url.pathname, query: Object.fromEntries(url.searchParams), body, headers: req.headers })
    const send = (status: number, payload: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(status === 200 ? { result: payload, status: 'ok', time: 0.0001 } : { status: { error: payload }, time: 0.0001 }))
    }
    const m = /^\/collections\/([^/]+)(\/.*)?$/.exec(url.pathname)
    if (!m) return send(404, `Not found: ${url.pathname}`)
    const name = decodeURIComponent(m[1]!)
    const rest = m[2] ?? ''
    const col = collections.get(name)
    const op = `${req.method} ${rest}`
    try {
      if (op === 'GET /exists') return send(200, { exists: col !== undefined })
      if (op === 'PUT ') {
        if (col) return send(409, `Wrong input: Collection \`${name}\` already exists!`)
        const v = body?.vectors
        if (typeof v?.size !== 'number' || typeof v?.distance !== 'string') return send(400, 'Wrong input: vectors { size, distance } required')
        collections.set(name, { size: v.size, distance: v.distance, points: new Map(), indexes: {} })
        return send(200, true)
      }
      if (!col) return send(404, `Not found: Collection \`${name}\` doesn't exist!`)
      if (op === 'GET ') {
        return send(200, {
          status: 'green',
          optimizer_status: 'ok',
          points_count: col.points.size,
          segments_count: 1,
          config: { params: { vectors: { size: col.size, distance: col.distance }, shard_number: 1, replication_factor: 1, write_consistency_factor: 1, on_disk_payload: true } },
          payload_schema: Object.fromEntries(Object.entries(col.indexes).map(([k, t]) => [k, { data_type: t, points: col.points.size }]))
        })
      }
      if (op === 'PUT /index') {
        col.indexes[body.field_name] = typeof body.field_schema === 'string' ? body.field_schema : body.field_schema?.type
        return send(200, { operation_id: requests.length, status: 'completed' })
      }
      if (op === 'PUT /points') {
        for (const p of body.points as Point[]) {
          if (!Array.isArray(p.vector) || p.vector.length !== col.size) {
            return send(400, `Wrong input: Vector dimension error: expected dim: ${col.size}, got ${Array.isArray(p.vector) ? p.vector.length : 'none'}`)
          }
        }
        for (const p of body.points as Point[]) col.points.set(p.id, { id: p.id, vector: p.vector, payload: p.payload ?? {} })
        return send(200, { operation_id: requests.length, status: body && url.searchParams.get('wait') === 'true' ? 'completed' : 'acknowledged' })
      }
      if (op === 'POST /points/query' || op === 'POST /points/search') {
        const vector: number[] = op.endsWith('query') ? body.query : body.vector
        if (!Array.isArray(vector) || vector.length !== col.size) return send(400, `Wrong input: Vector dimension error: expected dim: ${col.size}`)
        const found = [...col.points.values()]
          .filter((p) => matches(p, body.filter))
          .map((p) => ({ id: p.id, version: 1, score: cosine(vector, p.vector), payload: body.with_payload ? p.payload : null }))
          .filter((p) => body.score_threshold === undefined || p.score >= body.score_threshold)
          .sort((a, b) => b.score - a.score)
          .slice(0, body.limit ?? 10)
        return send(200, op.endsWith('query') ? { points: found } : found)
      }
      if (op === 'POST /points/delete') {
        if (Array.isArray(body.points)) {
          for (const id of body.points) col.points.delete(id)
        } else if (body.filter) {
          for (const [id, p] of col.points) if (matches(p, body.filter)) col.points.delete(id)
        } else {
          return send(400, 'Wrong input: points or filter required')
        }
        return send(200, { operation_id: requests.length, status: url.searchParams.get('wait') === 'true' ? 'completed' : 'acknowledged' })
      }
      if (op === 'POST /points/count') return send(200, { count: [...col.points.values()].filter((p) => matches(p, body?.filter)).length })
      return send(404, `Not found: ${req.method} ${url.pathname}`)
    } catch (err) {
      return send(400, `Format error: ${(err as Error).message}`)
    }
  })

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    collections,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      })
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

/** Only `must` with `match.value` and `range` is understood; anything else is a test failure, not a silent pass. */
function matches(p: Point, filter: Filter | undefined): boolean {
  if (!filter) return true
  const keys = Object.keys(filter)
  if (keys.some((k) => k !== 'must')) throw new Error(`unsupported filter clause ${keys.join(', ')}`)
  return (filter.must ?? []).every((c) => {
    const v = p.payload[c.key]
    if (c.match) return v === c.match.value
    if (c.range) {
      if (typeof v !== 'number') return false
      const r = c.range
      return (r.gt === undefined || v > r.gt) && (r.gte === undefined || v >= r.gte) && (r.lt === undefined || v < r.lt) && (r.lte === undefined || v <= r.lte)
    }
    throw new Error(`unsupported condition ${JSON.stringify(c)}`)
  })
}

function cosine(a: number[], b: number[]): number {
  let dot = 0
  let na = 0
  let nb = 0
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!
    na += a[i]! * a[i]!
    nb += b[i]! * b[i]!
  }
  return na && nb ? dot / Math.sqrt(na * nb) : 0
}
