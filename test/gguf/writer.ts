/**
 * A minimal GGUF v3 writer: metadata key/values and F32 tensors, nothing else.
 * Layout (llama.cpp gguf.h): header, KV pairs, tensor infos, padding to `general.alignment`, tensor data,
 * each tensor's offset aligned. All integers little-endian.
 */
import { writeFile } from 'node:fs/promises'

/** GGUF metadata value types (gguf-py `GGUFValueType`). */
export const GgufType = {
  UINT8: 0,
  INT8: 1,
  UINT16: 2,
  INT16: 3,
  UINT32: 4,
  INT32: 5,
  FLOAT32: 6,
  BOOL: 7,
  STRING: 8,
  ARRAY: 9,
  UINT64: 10,
  INT64: 11,
  FLOAT64: 12
} as const

/** A typed metadata value; arrays hold one element type. */
export type GgufValue =
  | { type: 'u32'; value: number }
  | { type: 'i32'; value: number }
  | { type: 'f32'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; of: 'string'; value: string[] }
  | { type: 'array'; of: 'f32'; value: number[] }
  | { type: 'array'; of: 'i32'; value: number[] }

/** One tensor: `dims` in GGML order (ne[0], the fastest-moving dimension, first). */
export interface GgufTensor {
  name: string
  dims: number[]
  data: Float32Array
}

const ALIGNMENT = 32
const GGML_TYPE_F32 = 0

/** Grows a byte buffer as values are appended. */
function byteSink() {
  let buf = Buffer.alloc(1 << 16)
  let len = 0
  const ensure = (n: number) => {
    if (len + n <= buf.length) return
    const next = Buffer.alloc(Math.max(buf.length * 2, len + n))
    buf.copy(next, 0, 0, len)
    buf = next
  }
  return {
    u32(v: number) { ensure(4); buf.writeUInt32LE(v, len); len += 4 },
    i32(v: number) { ensure(4); buf.writeInt32LE(v, len); len += 4 },
    u64(v: number) { ensure(8); buf.writeBigUInt64LE(BigInt(v), len); len += 8 },
    f32(v: number) { ensure(4); buf.writeFloatLE(v, len); len += 4 },
    u8(v: number) { ensure(1); buf.writeUInt8(v, len); len += 1 },
    bytes(b: Uint8Array) { ensure(b.length); buf.set(b, len); len += b.length },
    str(s: string) { const b = Buffer.from(s, 'utf8'); this.u64(b.length); this.bytes(b) },
    pad(to: number) { const n = (to - (len % to)) % to; ensure(n); buf.fill(0, len, len + n); len += n },
    get length() { return len },
    result() { return buf.subarray(0, len) }
  }
}

type Sink = ReturnType<typeof byteSink>

function writeValue(out: Sink, v: GgufValue): void {
  switch (v.type) {
    case 'u32': out.u32(GgufType.UINT32); out.u32(v.value); return
    case 'i32': out.u32(GgufType.INT32); out.i32(v.value); return
    case 'f32': out.u32(GgufType.FLOAT32); out.f32(v.value); return
    case 'bool': out.u32(GgufType.BOOL); out.u8(v.value ? 1 : 0); return
    case 'string': out.u32(GgufType.STRING); out.str(v.value); return
    case 'array': {
      out.u32(GgufType.ARRAY)
      if (v.of === 'string') {
        out.u32(GgufType.STRING); out.u64(v.value.length)
        for (const s of v.value) out.str(s)
      } else if (v.of === 'f32') {
        out.u32(GgufType.FLOAT32); out.u64(v.value.length)
        for (const x of v.value) out.f32(x)
      } else {
        out.u32(GgufType.INT32); out.u64(v.value.length)
        for (const x of v.value) out.i32(x)
      }
    }
  }
}

/**
 * Serialise metadata and F32 tensors into GGUF v3 bytes.
 *
 * @example
 * const bytes = encodeGguf({ 'general.architecture': { type: 'string', value: 'llama' } }, [])
 */
export function encodeGguf(metadata: Record<string, GgufValue>, tensors: GgufTensor[]): Buffer {
  const out = byteSink()
  out.bytes(Buffer.from('GGUF', 'ascii'))
  out.u32(3)
  out.u64(tensors.length)
  const entries = Object.entries({ 'general.alignment': { type: 'u32', value: ALIGNMENT } as GgufValue, ...metadata })
  out.u64(entries.length)
  for (const [key, value] of entries) {
    out.str(key)
    writeValue(out, value)
  }

  let offset = 0
  const offsets: number[] = []
  for (const t of tensors) {
    const elements = t.dims.reduce((a, b) => a * b, 1)
    if (elements !== t.data.length) throw new Error(`tensor ${t.name}: dims ${t.dims.join('x')} but ${t.data.length} values`)
    out.str(t.name)
    out.u32(t.dims.length)
    for (const d of t.dims) out.u64(d)
    out.u32(GGML_TYPE_F32)
    out.u64(offset)
    offsets.push(offset)
    offset += Math.ceil((elements * 4) / ALIGNMENT) * ALIGNMENT
  }
  out.pad(ALIGNMENT)

  const dataStart = out.length
  tensors.forEach((t, i) => {
    out.pad(ALIGNMENT)
    if (out.length - dataStart !== offsets[i]) throw new Error(`tensor ${t.name}: misaligned data`)
    out.bytes(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))
  })
  out.pad(ALIGNMENT)
  return out.result()
}

/** Write a GGUF file. */
export async function writeGguf(path: string, metadata: Record<string, GgufValue>, tensors: GgufTensor[]): Promise<void> {
  await writeFile(path, encodeGguf(metadata, tensors))
}
