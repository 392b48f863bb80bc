// Runs an ONNX graph in onnxruntime-node for the Python tests (Python has no onnxruntime here).
// usage: node ort_run.mjs MODEL.onnx OUT_DIR NAME=INPUT.npy ...  → OUT_DIR/<output name>.npy
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';

const DTYPES = { '<f4': ['float32', Float32Array], '<i8': ['int64', BigInt64Array], '<i4': ['int32', Int32Array] };

function readNpy(path) {
  const buf = readFileSync(path);
  if (buf.toString('latin1', 1, 6) !== 'NUMPY') throw new Error(`${path}: not a .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${path}: Fortran order unsupported`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const [type, Ctor] = DTYPES[descr] ?? [];
  if (!type) throw new Error(`${path}: dtype ${descr} unsupported`);
  const body = buf.subarray(start + headerLen);
  const data = new Ctor(body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength));
  return new ort.Tensor(type, data, shape);
}

function writeNpy(path, tensor) {
  const descr = { float32: '<f4', int64: '<i8', int32: '<i4' }[tensor.type];
  const shape = tensor.dims.length === 1 ? `(${tensor.dims[0]},)` : `(${tensor.dims.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const data = tensor.data;
  writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

const [model, outDir, ...pairs] = process.argv.slice(2);
const feeds = Object.fromEntries(pairs.map((p) => { const i = p.indexOf('='); return [p.slice(0, i), readNpy(p.slice(i + 1))]; }));
const session = await ort.InferenceSession.create(model);
const results = await session.run(feeds);
for (const [name, tensor] of Object.entries(results)) writeNpy(join(outDir, `${name}.npy`), tensor);
