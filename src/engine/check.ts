// `styleclip pack check`: everything loadPack checks, plus tensor shapes and graph signatures,
// reported as a list of problems instead of stopping at the first.
import { access } from 'node:fs/promises';
import { resolve } from 'node:path';
import { readNpy } from './npy.ts';
import { computeLayout, GENERATOR_FILES, GLOBAL_FILES, missingFiles, readPackJson, resolveFiles, validatePackJson, type FileKey, type Pack, type PackJson } from './pack.ts';
import { createSession } from './session.ts';
import { EngineError } from './types.ts';

export interface CheckResult {
  problems: string[];
  /** What the pack holds, for the report. */
  summary?: string;
}

type Dim = number | 'B';
interface GraphSig {
  label: string;
  path: string;
  inputs: [string, string, Dim[]][];
  outputs: [string, string, Dim[]][];
}

const exists = (p: string) => access(p).then(() => true, () => false);

function compareShape(label: string, what: string, actual: readonly (number | string)[], expected: Dim[]): string[] {
  if (actual.length === 0) return []; // shape not recorded in the graph
  if (actual.length !== expected.length) return [`${label}: ${what} has rank ${actual.length} [${actual.join(', ')}], expected [${expected.join(', ')}]`];
  const problems: string[] = [];
  expected.forEach((e, i) => {
    const a = actual[i];
    if (e === 'B') {
      if (typeof a === 'number' && a !== -1) problems.push(`${label}: ${what} has a fixed batch size ${a}; the batch axis must be dynamic`);
    } else if (typeof a === 'number' && a !== -1 && a !== e) {
      problems.push(`${label}: ${what} is [${actual.join(', ')}], expected [${expected.join(', ')}]`);
    }
  });
  return [...new Set(problems)]; // one line per shape, however many axes differ
}

async function checkGraph(sig: GraphSig): Promise<string[]> {
  let session;
  try {
    session = await createSession(sig.path, { device: 'cpu', threads: 1 });
  } catch (err) {
    return [err instanceof EngineError ? err.message : `${sig.label}: ${String(err)}`];
  }
  const problems: string[] = [];
  const sides = [
    ['input', sig.inputs, session.inputMetadata],
    ['output', sig.outputs, session.outputMetadata],
  ] as const;
  for (const [side, wanted, meta] of sides) {
    for (const [name, type, shape] of wanted) {
      const m = meta.find((x) => x.name === name);
      if (!m) {
        problems.push(`${sig.label}: no ${side} named "${name}" (has ${meta.map((x) => x.name).join(', ') || 'none'})`);
        continue;
      }
      if (!m.isTensor) continue;
      if (m.type !== type) problems.push(`${sig.label}: ${side} "${name}" is ${m.type}, expected ${type}`);
      problems.push(...compareShape(sig.label, `${side} "${name}"`, m.shape, shape));
    }
  }
  await session.release();
  return problems;
}

async function checkNpy(path: string, label: string, expected: number[]): Promise<string[]> {
  try {
    const { shape, data } = await readNpy(path);
    if (shape.length !== expected.length || shape.some((d, i) => d !== expected[i])) {
      const rows = label === 'fs3' && shape.length === 2 && shape[0] !== expected[0] ? ` (${shape[0]} rows, but styleLayout has ${expected[0]} conv channels)` : '';
      return [`${label} ${path} has shape [${shape.join(', ')}], expected [${expected.join(', ')}]${rows}`];
    }
    if (data.some((x) => !Number.isFinite(x))) return [`${label} ${path} contains NaN or infinite values`];
    return [];
  } catch (err) {
    return [err instanceof EngineError ? err.message : String(err)];
  }
}

export async function checkPack(dir: string): Promise<CheckResult> {
  const abs = resolve(dir);
  let json: unknown;
  try {
    json = await readPackJson(abs);
  } catch (err) {
    return { problems: [(err as Error).message] };
  }
  const problems = validatePackJson(json);
  if (problems.length > 0) return { problems };
  const pj = json as PackJson;
  const pack: Pack = { dir: abs, json: pj, files: resolveFiles(abs, pj), layout: computeLayout(pj.styleLayout) };
  problems.push(...(await missingFiles(pack, [...GENERATOR_FILES, ...GLOBAL_FILES], true)));
  const { styleChannels: S, convChannels: C } = pack.layout;
  const { zDim, wDim, numWs, resolution: R } = pj;
  const { embedDim, contextLength } = pj.clip;
  const f = pack.files;
  const tensors: [FileKey, string, number[]][] = [
    ['wAvg', 'w_avg', [wDim]],
    ['fs3', 'fs3', [C, embedDim]],
    ['std', 'std', [S]],
    ['mean', 'mean', [S]],
  ];
  for (const [key, label, shape] of tensors) {
    if (await exists(f[key])) problems.push(...(await checkNpy(f[key], label, shape)));
  }
  const graphs: GraphSig[] = [
    { label: 'mapping', path: f.mapping, inputs: [['z', 'float32', ['B', zDim]]], outputs: [['w', 'float32', ['B', wDim]]] },
    { label: 'to_styles', path: f.toStyles, inputs: [['wplus', 'float32', ['B', numWs, wDim]]], outputs: [['styles', 'float32', ['B', S]]] },
    { label: 'synthesis', path: f.synthesis, inputs: [['styles', 'float32', ['B', S]]], outputs: [['image', 'float32', ['B', 3, R, R]]] },
    { label: 'text_encoder', path: f.textEncoder, inputs: [['input_ids', 'int64', ['B', contextLength]]], outputs: [['text_embeds', 'float32', ['B', embedDim]]] },
    ...(pj.mappers ?? []).map((m) => ({
      label: `mapper ${m.slug}`,
      path: resolve(abs, m.file),
      inputs: [['wplus', 'float32', ['B', numWs, wDim]]] as GraphSig['inputs'],
      outputs: [['delta', 'float32', ['B', numWs, wDim]]] as GraphSig['outputs'],
    })),
  ];
  if (pj.encoder) {
    const size = pj.encoder.inputSize;
    const path = resolve(abs, pj.encoder.file);
    if (await exists(path)) {
      graphs.push({ label: 'encoder', path, inputs: [['images', 'float32', ['B', 3, size, size]]], outputs: [['wplus', 'float32', ['B', numWs, wDim]]] });
    } else problems.push(`missing encoder file ${path}`);
  }
  for (const g of graphs) {
    if (await exists(g.path)) problems.push(...(await checkGraph(g)));
  }
  const mappers = (pj.mappers ?? []).map((m) => m.slug).join(', ') || 'none';
  const encoder = pj.encoder ? `, encoder: ${pj.encoder.format} ${pj.encoder.inputSize}px` : '';
  const summary = `${pj.name}: ${R}px, W+ ${numWs}×${wDim}, S ${S} (${C} conv channels), CLIP ${embedDim}, mappers: ${mappers}${encoder}${pj.untrained ? ', untrained' : ''}`;
  return { problems, summary };
}
