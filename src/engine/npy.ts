// Minimal .npy reader/writer (NumPy format 1.0–3.0) for float32 tensors. The runtime never
// unpickles: object arrays are refused, only plain little-endian floats are read.
import { readFile, writeFile } from 'node:fs/promises';
import { EngineError } from './types.ts';

export interface NpyArray {
  shape: number[];
  data: Float32Array;
}

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]); // \x93NUMPY

/** Parses .npy bytes; `label` names the file in errors. float64 input is converted to float32. */
export function parseNpy(bytes: Uint8Array, label = 'array'): NpyArray {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (why: string) => new EngineError('bad_npy', `${label}: not a usable .npy file (${why})`);
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) throw bad('missing NUMPY magic');
  const major = buf[6];
  let headerLen: number;
  let offset: number;
  if (major === 1) {
    headerLen = buf.readUInt16LE(8);
    offset = 10;
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw bad('truncated header');
    headerLen = buf.readUInt32LE(8);
    offset = 12;
  } else {
    throw bad(`unsupported format version ${major}`);
  }
  if (offset + headerLen > buf.length) throw bad('truncated header');
  const header = buf.subarray(offset, offset + headerLen).toString(major === 3 ? 'utf8' : 'latin1');
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad('malformed header');
  if (fortran === 'True') throw bad('Fortran order; save it with np.ascontiguousarray');
  const shape = shapeText
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (shape.some((d) => !Number.isInteger(d) || d < 0)) throw bad(`bad shape (${shapeText})`);
  const count = shape.reduce((a, b) => a * b, 1);
  const body = offset + headerLen;
  const itemSize = descr === '<f4' ? 4 : descr === '<f8' ? 8 : 0;
  if (itemSize === 0) throw bad(`dtype ${descr}; expected little-endian float32 (<f4) or float64 (<f8)`);
  if (buf.length - body < count * itemSize) throw bad(`data truncated: expected ${count * itemSize} bytes`);
  const start = buf.byteOffset + body;
  // Copying the bytes gives an aligned buffer (the hosts we run on are little-endian).
  const data =
    itemSize === 4
      ? new Float32Array(buf.buffer.slice(start, start + 4 * count))
      : Float32Array.from(new Float64Array(buf.buffer.slice(start, start + 8 * count)));
  return { shape, data };
}

/** Serialises float32 data with the given shape as .npy version 1.0. */
export function formatNpy(shape: readonly number[], data: Float32Array): Buffer {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new Error(`npy: shape [${shape.join(', ')}] does not hold ${data.length} values`);
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Pad so the data starts on a 64-byte boundary, header ends with '\n'.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const out = Buffer.alloc(total + 4 * count);
  MAGIC.copy(out, 0);
  out[6] = 1;
  out[7] = 0;
  out.writeUInt16LE(header.length, 8);
  out.write(header, 10, 'latin1');
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, total);
  return out;
}

export async function readNpy(path: string): Promise<NpyArray> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new EngineError('missing_file', `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return parseNpy(bytes, path);
}

export async function writeNpy(path: string, shape: readonly number[], data: Float32Array): Promise<void> {
  try {
    await writeFile(path, formatNpy(shape, data));
  } catch (err) {
    throw new EngineError('unwritable_output', `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}
