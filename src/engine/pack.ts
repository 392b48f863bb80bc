// Reading and validating a model pack folder (spec: models/README.md). Cheap structural checks
// run on open; `checkPack` adds the tensor shapes and graph signatures for `styleclip pack check`.
import { access } from 'node:fs/promises';
import { constants, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EngineError, type PackSummary } from './types.ts';

export interface StyleLayer {
  name: string;
  resolution: number;
  channels: number;
  wIndex: number;
  toRgb: boolean;
}

export interface MapperEntry {
  name: string;
  slug: string;
  file: string;
  levels?: { coarse: boolean; medium: boolean; fine: boolean };
}

/** The optional image encoder (e4e): aligned face [B, 3, inputSize, inputSize] in [-1, 1] → W+. */
export interface EncoderEntry {
  file: string;
  inputSize: number;
  format: string;
}

export interface PackJson {
  format: 'styleclip-pack';
  version: number;
  name: string;
  untrained?: boolean;
  resolution: number;
  zDim: number;
  wDim: number;
  numWs: number;
  styleLayout: StyleLayer[];
  clip: { embedDim: number; contextLength: number; imageSize?: number };
  defaults: PackSummary['defaults'];
  mappers?: MapperEntry[];
  encoder?: EncoderEntry;
  files?: Partial<Record<FileKey, string>>;
  [key: string]: unknown;
}

export type FileKey = 'mapping' | 'toStyles' | 'synthesis' | 'wAvg' | 'textEncoder' | 'imageEncoder' | 'tokenizer' | 'fs3' | 'std' | 'mean';

export const DEFAULT_FILES: Record<FileKey, string> = {
  mapping: 'generator/mapping.onnx',
  toStyles: 'generator/to_styles.onnx',
  synthesis: 'generator/synthesis.onnx',
  wAvg: 'generator/w_avg.npy',
  textEncoder: 'clip/text_encoder.onnx',
  imageEncoder: 'clip/image_encoder.onnx',
  tokenizer: 'clip/tokenizer.json',
  fs3: 'directions/fs3.npy',
  std: 'directions/s_std.npy',
  mean: 'directions/s_mean.npy',
};

/** Needed to open a pack (generate, mapper edits). */
export const GENERATOR_FILES: FileKey[] = ['mapping', 'toStyles', 'synthesis', 'wAvg'];
/** Needed for the global method; checked when it is first used, and by `pack check`. */
export const GLOBAL_FILES: FileKey[] = ['textEncoder', 'tokenizer', 'fs3', 'std'];

export interface PackLayout {
  /** S offset of each layer. */
  offsets: number[];
  styleChannels: number;
  convChannels: number;
  /** S index of each conv channel, in fs3 row order. */
  convIndex: Int32Array;
}

export interface Pack {
  dir: string;
  json: PackJson;
  /** Absolute paths of every file key. */
  files: Record<FileKey, string>;
  layout: PackLayout;
}

export function computeLayout(layers: readonly StyleLayer[]): PackLayout {
  const offsets: number[] = [];
  let s = 0;
  let conv = 0;
  for (const layer of layers) {
    offsets.push(s);
    s += layer.channels;
    if (!layer.toRgb) conv += layer.channels;
  }
  const convIndex = new Int32Array(conv);
  let c = 0;
  layers.forEach((layer, i) => {
    if (layer.toRgb) return;
    for (let k = 0; k < layer.channels; k++) convIndex[c++] = offsets[i] + k;
  });
  return { offsets, styleChannels: s, convChannels: conv, convIndex };
}

/** rosinality's layer order for a resolution: [name, resolution, wIndex, toRgb]. */
export function expectedLayers(resolution: number): [string, number, number, boolean][] {
  const out: [string, number, number, boolean][] = [
    ['conv1', 4, 0, false],
    ['to_rgb1', 4, 1, true],
  ];
  const levels = Math.log2(resolution) - 2;
  for (let k = 0; k < levels; k++) {
    const res = 8 << k;
    out.push([`convs.${2 * k}`, res, 2 * k + 1, false], [`convs.${2 * k + 1}`, res, 2 * k + 2, false], [`to_rgbs.${k}`, res, 2 * k + 3, true]);
  }
  return out;
}

const isPosInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v > 0;

/** Problems in pack.json itself (empty when it is consistent). */
export function validatePackJson(json: unknown): string[] {
  const problems: string[] = [];
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return ['pack.json is not a JSON object'];
  const p = json as Partial<PackJson>;
  if (p.format !== 'styleclip-pack') problems.push(`pack.json: format is ${JSON.stringify(p.format)}, expected "styleclip-pack"`);
  if (p.version !== 1) problems.push(`pack.json: version ${JSON.stringify(p.version)} is not supported (expected 1)`);
  if (typeof p.name !== 'string' || p.name.length === 0) problems.push('pack.json: name is missing');
  for (const key of ['resolution', 'zDim', 'wDim', 'numWs'] as const) {
    if (!isPosInt(p[key])) problems.push(`pack.json: ${key} must be a positive integer, got ${JSON.stringify(p[key])}`);
  }
  const res = p.resolution;
  if (isPosInt(res) && (res < 4 || !Number.isInteger(Math.log2(res)))) problems.push(`pack.json: resolution ${res} is not a power of two ≥ 4`);
  if (!Array.isArray(p.styleLayout) || p.styleLayout.length === 0) {
    problems.push('pack.json: styleLayout is missing or empty');
  } else {
    p.styleLayout.forEach((l, i) => {
      if (typeof l?.name !== 'string' || !isPosInt(l.channels) || !isPosInt(l.resolution) || typeof l.toRgb !== 'boolean' || !Number.isInteger(l.wIndex)) {
        problems.push(`pack.json: styleLayout[${i}] needs name, resolution, channels > 0, wIndex and toRgb`);
      }
    });
    if (isPosInt(res) && Number.isInteger(Math.log2(res)) && problems.length === 0) {
      const expected = expectedLayers(res);
      if (p.styleLayout.length !== expected.length) {
        problems.push(`pack.json: styleLayout has ${p.styleLayout.length} layers; a ${res}px generator has ${expected.length} (conv1, to_rgb1, then convs/to_rgbs per resolution)`);
      } else {
        expected.forEach(([name, r, w, toRgb], i) => {
          const l = p.styleLayout![i];
          if (l.name !== name || l.resolution !== r || l.wIndex !== w || l.toRgb !== toRgb) {
            problems.push(`pack.json: styleLayout[${i}] is ${l.name}@${l.resolution} (wIndex ${l.wIndex}, toRgb ${l.toRgb}); expected ${name}@${r} (wIndex ${w}, toRgb ${toRgb})`);
          }
        });
      }
      const numWs = 2 * Math.log2(res) - 2;
      if (isPosInt(p.numWs) && p.numWs !== numWs) problems.push(`pack.json: numWs is ${p.numWs}; a ${res}px generator uses ${numWs} W+ rows`);
    }
  }
  if (!isPosInt(p.clip?.embedDim) || !isPosInt(p.clip?.contextLength)) problems.push('pack.json: clip.embedDim and clip.contextLength must be positive integers');
  const d = p.defaults;
  if (typeof d !== 'object' || d === null) {
    problems.push('pack.json: defaults is missing');
  } else {
    if (typeof d.neutral !== 'string' || d.neutral.trim() === '') problems.push('pack.json: defaults.neutral must be a non-empty text');
    if (typeof d.targetTemplate !== 'string' || !d.targetTemplate.includes('{}')) problems.push('pack.json: defaults.targetTemplate must contain "{}"');
    if (typeof d.strength !== 'number' || !Number.isFinite(d.strength)) problems.push('pack.json: defaults.strength must be a number');
    if (d.threshold !== null && !(typeof d.threshold === 'number' && d.threshold >= 0 && d.threshold <= 1)) {
      problems.push('pack.json: defaults.threshold must be null (automatic) or in [0, 1]');
    }
    if (d.autoThresholdChannels !== undefined && !isPosInt(d.autoThresholdChannels)) {
      problems.push('pack.json: defaults.autoThresholdChannels must be a positive integer');
    }
  }
  if (p.mappers !== undefined) {
    if (!Array.isArray(p.mappers)) problems.push('pack.json: mappers must be a list');
    else {
      const slugs = new Set<string>();
      p.mappers.forEach((m, i) => {
        if (typeof m?.name !== 'string' || typeof m.slug !== 'string' || typeof m.file !== 'string') problems.push(`pack.json: mappers[${i}] needs name, slug and file`);
        else if (slugs.has(m.slug)) problems.push(`pack.json: mapper slug "${m.slug}" appears twice`);
        else slugs.add(m.slug);
      });
    }
  }
  if (p.encoder !== undefined) {
    const e = p.encoder;
    if (typeof e?.file !== 'string' || !isPosInt(e.inputSize) || typeof e.format !== 'string') {
      problems.push('pack.json: encoder needs file, inputSize (a positive integer) and format');
    }
  }
  return problems;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

/** Reads pack.json (a small file: read synchronously, also by the bot's pack catalogue); throws a one-line EngineError when the folder is not a pack. */
export function readPackJson(dir: string): unknown {
  const path = join(dir, 'pack.json');
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new EngineError('missing_pack', `no model pack at ${dir} (pack.json not found); build one with: npm run toolkit -- tiny-pack --out ${dir}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new EngineError('bad_pack', `${path} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Absolute path of every file key: the defaults, overridden by pack.json `files`. */
export function resolveFiles(dir: string, json: PackJson): Record<FileKey, string> {
  const files = { ...DEFAULT_FILES, ...(json.files ?? {}) };
  return Object.fromEntries(Object.entries(files).map(([k, v]) => [k, resolve(dir, v)])) as Record<FileKey, string>;
}

/** Missing files among `keys` (and the mapper graphs when `mappers`). */
export async function missingFiles(pack: Pack, keys: readonly FileKey[], mappers: boolean): Promise<string[]> {
  const problems: string[] = [];
  for (const key of keys) {
    if (!(await exists(pack.files[key]))) problems.push(`missing ${key} file ${pack.files[key]}`);
  }
  for (const m of mappers ? (pack.json.mappers ?? []) : []) {
    const path = resolve(pack.dir, m.file);
    if (!(await exists(path))) problems.push(`missing mapper "${m.name}" file ${path}`);
  }
  return problems;
}

/** Reads and validates pack.json (no other file is looked at); one-line EngineError when it is not a valid pack. */
export function readPack(dir: string): Pack {
  const abs = resolve(dir);
  const json = readPackJson(abs);
  const problems = validatePackJson(json);
  if (problems.length > 0) throw invalidPack(abs, problems);
  const pj = json as PackJson;
  return { dir: abs, json: pj, files: resolveFiles(abs, pj), layout: computeLayout(pj.styleLayout) };
}

function invalidPack(dir: string, problems: string[]): EngineError {
  const more = problems.length > 1 ? ` (+${problems.length - 1} more; run: styleclip pack check ${dir})` : '';
  return new EngineError('bad_pack', `invalid model pack ${dir}: ${problems[0]}${more}`);
}

/** Opens a pack folder: pack.json valid and generator files present, else one-line EngineError. */
export async function loadPack(dir: string): Promise<Pack> {
  const pack = readPack(dir);
  const missing = await missingFiles(pack, GENERATOR_FILES, false);
  if (missing.length > 0) throw invalidPack(pack.dir, missing);
  return pack;
}

/** What the engine, the CLI and the bot say about a pack. `name` overrides pack.json's (a catalogue names packs by folder). */
export function summarizePack(pack: Pack, name = pack.json.name): PackSummary {
  const j = pack.json;
  return {
    name,
    dir: pack.dir,
    untrained: j.untrained === true,
    resolution: j.resolution,
    wDim: j.wDim,
    numWs: j.numWs,
    styleChannels: pack.layout.styleChannels,
    convChannels: pack.layout.convChannels,
    mappers: (j.mappers ?? []).map((m) => ({ name: m.name, slug: m.slug })),
    identity: !!(j as { identity?: unknown }).identity,
    ...(j.encoder ? { encoder: { inputSize: j.encoder.inputSize, format: j.encoder.format } } : {}),
    defaults: { ...j.defaults },
  };
}

/** The toolkit's slug rule (pack.py `slugify`): lowercase, every run of non-[a-z0-9] becomes one '_', trimmed. */
export function slugify(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '_').replace(/^_+|_+$/g, '');
}

/** The one rule for which mapper a text names: its name (case and outer spaces ignored) or its slug. */
export function findMapper<M extends { name: string; slug: string }>(mappers: readonly M[], text: string): M | undefined {
  const wanted = text.trim().toLowerCase();
  const slug = slugify(wanted);
  return mappers.find((m) => m.name.toLowerCase() === wanted || (slug !== '' && m.slug.toLowerCase() === slug));
}
