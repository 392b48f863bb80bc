// The StyleCLIP engine over onnxruntime-node: sample, W+ → S, render, text directions, global
// and mapper edits. `openPack(dir, { device })` is the entry point; sessions load lazily, once.
import { resolve } from 'node:path';
import { statSync } from 'node:fs';
import { autoThreshold, relevance, styleDirection, textDirection } from './direction.ts';
import { readNpy } from './npy.ts';
import { findMapper, GLOBAL_FILES, loadPack, missingFiles, summarizePack, type MapperEntry, type Pack } from './pack.ts';
import { BoundedMap } from '../util/bounded-map.ts';
import { resolveTexts } from './prompt.ts';
import { seedToZ } from './random.ts';
import { LazySession, ort, resolveDevice, type Device } from './session.ts';
import { IMAGENET_TEMPLATES_79, templateTexts } from './templates.ts';
import {
  EngineError,
  strengthProblem,
  type EditInfo,
  type EditSpec,
  type Engine,
  type LatentState,
  type PackSummary,
  type RenderedImage,
} from './types.ts';

export * from './types.ts';
export { encodeImage, writeImages, outputFormat, checkWritable, MIME, type ImageFormat } from './image.ts';
export { loadLatents, saveLatents } from './latent.ts';
export { resolveDevice, type Device } from './session.ts';
export * from './photo/index.ts';

/** What the engine needs from a CLIP tokenizer (src/engine/tokenizer.ts provides it). */
export interface TextTokenizer {
  tokenize(texts: string[], contextLength: number): BigInt64Array;
}

export interface OpenOptions {
  /** 'cpu' (default) or 'cuda'; falls back to STYLECLIP_DEVICE. */
  device?: string;
  /** CPU intra-op threads (default: available cores). */
  threads?: number;
  /** Overrides the pack's tokenizer (tests). */
  tokenizer?: TextTokenizer;
  /** Prompts whose text direction stays cached (default 256). */
  cacheSize?: number;
}

/** A text direction: ΔS for one (target, neutral, β). */
export interface StyleDirection {
  target: string;
  neutral: string;
  threshold: number;
  channels: number;
  /** ΔS over all style channels, layout order. */
  delta: Float32Array;
}

interface PromptDirection {
  target: string;
  neutral: string;
  /** Δt, unit length. */
  dt: Float32Array;
  /** r = fs3 · Δt, one entry per conv channel. */
  relevance: Float32Array;
  /** ‖e(target) − e(neutral)‖ before normalising. */
  norm: number;
}

/** A Map with least-recently-used eviction. */
export function validateStrength(strength: number): void {
  const problem = strengthProblem(strength);
  if (problem) throw new EngineError('bad_strength', problem);
}

export function validateThreshold(threshold: number | 'auto' | undefined): void {
  if (threshold === undefined || threshold === 'auto') return;
  if (typeof threshold !== 'number' || !(threshold >= 0 && threshold <= 1)) {
    throw new EngineError('bad_threshold', `threshold β must be in [0, 1] (typical 0.10–0.30) or auto, got ${threshold}`);
  }
}

function tensorData(out: ort.InferenceSession.ReturnType, name: string, graph: string): Float32Array {
  const t = out[name];
  if (!t) throw new EngineError('bad_pack', `${graph} has no output named "${name}"; rebuild the pack with the toolkit`);
  return t.data as Float32Array;
}

export class StyleClipEngine implements Engine {
  readonly summary: PackSummary;
  /** Text-encoder runs so far (each is one batched call for a new prompt). */
  textEncoderCalls = 0;

  private readonly mapping: LazySession;
  private readonly toStyles: LazySession;
  private readonly synthesis: LazySession;
  private readonly textEncoder: LazySession;
  private readonly mappers = new Map<string, LazySession>();
  /** Mapper graphs outside the pack (EditSpec.mapperFile), by path, with the mtime they were opened at. */
  private readonly fileMappers = new Map<string, { mtimeMs: number; session: LazySession }>();
  private readonly encoder: LazySession | null;
  private wAvg: Promise<Float32Array> | null = null;
  private globalData: Promise<{ fs3: Float32Array; std: Float32Array; tokenizer: TextTokenizer }> | null = null;
  private readonly prompts: BoundedMap<string, Promise<PromptDirection>>;
  private readonly deltas: BoundedMap<string, StyleDirection>;

  constructor(
    readonly pack: Pack,
    readonly device: Device,
    private readonly opts: OpenOptions,
  ) {
    const j = pack.json;
    const sessionOpts = { device, threads: opts.threads };
    this.mapping = new LazySession(pack.files.mapping, sessionOpts);
    this.toStyles = new LazySession(pack.files.toStyles, sessionOpts);
    this.synthesis = new LazySession(pack.files.synthesis, sessionOpts);
    this.textEncoder = new LazySession(pack.files.textEncoder, sessionOpts);
    for (const m of j.mappers ?? []) this.mappers.set(m.slug, new LazySession(resolve(pack.dir, m.file), sessionOpts));
    this.encoder = j.encoder ? new LazySession(resolve(pack.dir, j.encoder.file), sessionOpts) : null;
    const size = opts.cacheSize ?? 256;
    this.prompts = new BoundedMap(size);
    this.deltas = new BoundedMap(size * 4);
    this.summary = summarizePack(pack);
  }

  /** The execution provider the sessions run on. */
  get provider(): string {
    return this.device === 'cuda' ? 'CUDAExecutionProvider' : 'CPUExecutionProvider';
  }

  private latentDims() {
    return { numWs: this.summary.numWs, wDim: this.summary.wDim, styleChannels: this.summary.styleChannels };
  }

  private loadWAvg(): Promise<Float32Array> {
    this.wAvg ??= readNpy(this.pack.files.wAvg).then(({ shape, data }) => {
      if (shape.length !== 1 || shape[0] !== this.summary.wDim) {
        throw new EngineError('bad_pack', `${this.pack.files.wAvg} has shape [${shape.join(', ')}], expected [${this.summary.wDim}]`);
      }
      return data;
    });
    this.wAvg.catch(() => (this.wAvg = null));
    return this.wAvg;
  }

  async sample(seeds: number[], truncation = 1): Promise<LatentState[]> {
    if (!Number.isFinite(truncation)) throw new EngineError('bad_truncation', `truncation ψ must be a number, got ${truncation}`);
    const { wDim, numWs } = this.summary;
    const zDim = this.pack.json.zDim;
    const z = new Float32Array(seeds.length * zDim);
    seeds.forEach((seed, i) => z.set(seedToZ(seed, zDim), i * zDim));
    const [wAvg, out] = await Promise.all([this.loadWAvg(), this.mapping.run({ z: new ort.Tensor('float32', z, [seeds.length, zDim]) })]);
    const w = tensorData(out, 'w', 'mapping.onnx');
    return seeds.map((_, i) => {
      const wplus = new Float32Array(numWs * wDim);
      for (let j = 0; j < wDim; j++) {
        const v = wAvg[j] + truncation * (w[i * wDim + j] - wAvg[j]);
        for (let row = 0; row < numWs; row++) wplus[row * wDim + j] = v;
      }
      return { wplus };
    });
  }

  private loadGlobalData() {
    this.globalData ??= (async () => {
      const missing = await missingFiles(this.pack, GLOBAL_FILES, false);
      if (missing.length > 0) {
        throw new EngineError('no_global', `pack ${this.summary.name} cannot do global edits: ${missing[0]} (convert CLIP and directions with the toolkit)`);
      }
      const { convChannels, styleChannels } = this.summary;
      const embedDim = this.pack.json.clip.embedDim;
      const [fs3, std] = await Promise.all([readNpy(this.pack.files.fs3), readNpy(this.pack.files.std)]);
      if (fs3.shape.length !== 2 || fs3.shape[0] !== convChannels || fs3.shape[1] !== embedDim) {
        throw new EngineError('bad_pack', `${this.pack.files.fs3} has shape [${fs3.shape.join(', ')}], expected [${convChannels}, ${embedDim}] (conv channels × CLIP dim)`);
      }
      if (std.shape.length !== 1 || std.shape[0] !== styleChannels) {
        throw new EngineError('bad_pack', `${this.pack.files.std} has shape [${std.shape.join(', ')}], expected [${styleChannels}]`);
      }
      const tokenizer = this.opts.tokenizer ?? (await loadTokenizer(this.pack.files.tokenizer));
      return { fs3: fs3.data, std: std.data, tokenizer };
    })();
    this.globalData.catch(() => (this.globalData = null));
    return this.globalData;
  }

  /** Δt for verbatim texts (and its norm before normalising); cached like every direction. */
  async textDirection(target: string, neutral: string): Promise<{ dt: Float32Array; norm: number }> {
    const { dt, norm } = await this.promptDirection(target, neutral);
    return { dt, norm };
  }

  /** Δt and r for a text pair: one batched text-encoder call of 2 × 79 texts, cached. */
  private promptDirection(target: string, neutral: string): Promise<PromptDirection> {
    const key = JSON.stringify([target, neutral]);
    let p = this.prompts.get(key);
    if (!p) {
      p = (async () => {
        const { fs3, tokenizer } = await this.loadGlobalData();
        const { embedDim, contextLength } = this.pack.json.clip;
        const texts = [...templateTexts(target), ...templateTexts(neutral)];
        const session = await this.textEncoder.get();
        const ids = trimPadding(tokenizer.tokenize(texts, contextLength), texts.length, contextLength, session);
        this.textEncoderCalls++;
        const out = await session.run({ input_ids: new ort.Tensor('int64', ids, [texts.length, ids.length / texts.length]) });
        const { dt, norm } = textDirection(tensorData(out, 'text_embeds', 'text_encoder.onnx'), embedDim, IMAGENET_TEMPLATES_79.length);
        return { target, neutral, dt, relevance: relevance(fs3, embedDim, dt), norm };
      })();
      this.prompts.set(key, p);
      p.catch(() => this.prompts.delete(key));
    }
    return p;
  }

  /** ΔS for a prompt (neutral rule of docs/engine.md) at β (number, 'auto', or the pack default). */
  async direction(prompt: string, neutralText?: string, threshold?: number | 'auto'): Promise<StyleDirection> {
    validateThreshold(threshold);
    const { target, neutral } = resolveTexts(prompt, neutralText, this.summary.defaults);
    const [pd, { std }] = await Promise.all([this.promptDirection(target, neutral), this.loadGlobalData()]);
    const wanted = threshold ?? this.summary.defaults.threshold ?? 'auto';
    const beta = wanted === 'auto' ? autoThreshold(pd.relevance, this.summary.defaults.autoThresholdChannels) : wanted;
    const key = JSON.stringify([target, neutral, beta]);
    // No await between the lookup and the store: a batch of the same edit computes ΔS once.
    let d = this.deltas.get(key);
    if (!d) {
      const { delta, channels } = styleDirection(pd.relevance, beta, std, this.pack.layout);
      d = { target, neutral, threshold: beta, channels, delta };
      this.deltas.set(key, d);
    }
    return d;
  }

  /** The mapper for a spec: by --mapper name/slug, else the one whose name is the prompt. */
  resolveMapper(spec: Pick<EditSpec, 'mapper' | 'prompt'>): MapperEntry {
    const list = this.pack.json.mappers ?? [];
    const found = findMapper(list, spec.mapper ?? spec.prompt);
    if (!found) {
      const names = list.map((m) => `${m.name} (${m.slug})`).join(', ');
      throw new EngineError('unknown_mapper', `no mapper "${spec.mapper ?? spec.prompt}" in pack ${this.summary.name}; ${names ? `available: ${names}` : 'this pack has no mappers (use the global method)'}`);
    }
    return found;
  }

  /** A session for a mapper graph outside the pack; reopened when the file was replaced (retrained). */
  private fileMapper(file: string): LazySession {
    let mtimeMs: number;
    try {
      mtimeMs = statSync(file).mtimeMs;
    } catch {
      throw new EngineError('unknown_mapper', `mapper file ${file} is gone (removed?)`);
    }
    const hit = this.fileMappers.get(file);
    if (hit && hit.mtimeMs === mtimeMs) return hit.session;
    if (hit) void hit.session.release().catch(() => undefined);
    const session = new LazySession(file, { device: this.device, threads: this.opts.threads });
    this.fileMappers.set(file, { mtimeMs, session });
    return session;
  }

  async edit(states: LatentState[], specs: EditSpec[]): Promise<{ state: LatentState; info: EditInfo }[]> {
    if (states.length !== specs.length) throw new Error(`edit: ${states.length} states but ${specs.length} specs`);
    specs.forEach((s) => {
      validateStrength(s.strength);
      validateThreshold(s.threshold);
    });
    const results: { state: LatentState; info: EditInfo }[] = new Array(states.length);
    // Mapper edits: one mapper run per mapper for all its states.
    const byMapper = new Map<string, number[]>();
    const sessionOf = new Map<string, LazySession>();
    for (let i = 0; i < specs.length; i++) {
      const spec = specs[i];
      if (spec.method === 'mapper') {
        const key = spec.mapperFile ? `file:${spec.mapperFile}` : this.resolveMapper(spec).slug;
        if (!sessionOf.has(key)) sessionOf.set(key, spec.mapperFile ? this.fileMapper(spec.mapperFile) : this.mappers.get(key)!);
        byMapper.set(key, [...(byMapper.get(key) ?? []), i]);
      } else if (spec.method !== 'global') {
        throw new EngineError('bad_method', `unknown method "${spec.method as string}"; use global or mapper`);
      }
    }
    const { numWs, wDim, styleChannels } = this.summary;
    const row = numWs * wDim;
    const jobs: Promise<void>[] = [];
    for (const [slug, idx] of byMapper) {
      jobs.push(
        (async () => {
          const batch = new Float32Array(idx.length * row);
          idx.forEach((i, k) => batch.set(states[i].wplus, k * row));
          const out = await sessionOf.get(slug)!.run({ wplus: new ort.Tensor('float32', batch, [idx.length, numWs, wDim]) });
          const m = tensorData(out, 'delta', `mapper ${slug}`);
          idx.forEach((i, k) => {
            const step = specs[i].strength * 0.1;
            const src = states[i].wplus;
            const wplus = new Float32Array(row);
            for (let j = 0; j < row; j++) wplus[j] = src[j] + step * m[k * row + j];
            results[i] = { state: { wplus, styleDelta: states[i].styleDelta }, info: { method: 'mapper', mapper: specs[i].mapperFile ? (specs[i].mapper ?? slug) : slug, strength: specs[i].strength } };
          });
        })(),
      );
    }
    specs.forEach((spec, i) => {
      if (spec.method !== 'global') return;
      jobs.push(
        (async () => {
          const d = await this.direction(spec.prompt, spec.neutral, spec.threshold);
          const prev = states[i].styleDelta;
          const styleDelta = new Float32Array(styleChannels);
          for (let j = 0; j < styleChannels; j++) styleDelta[j] = (prev ? prev[j] : 0) + spec.strength * d.delta[j];
          results[i] = {
            state: { wplus: states[i].wplus, styleDelta },
            info: { method: 'global', target: d.target, neutral: d.neutral, strength: spec.strength, threshold: d.threshold, channels: d.channels },
          };
        })(),
      );
    });
    await Promise.all(jobs);
    return results;
  }

  /** S for each state: to_styles(W+) + ΔS, one to_styles call for the batch. */
  async styles(states: LatentState[]): Promise<Float32Array> {
    const { numWs, wDim, styleChannels } = this.summary;
    const row = numWs * wDim;
    const batch = new Float32Array(states.length * row);
    states.forEach((s, i) => {
      if (s.wplus.length !== row) throw new EngineError('bad_latent_shape', `a latent has ${s.wplus.length} values; this pack needs ${numWs}×${wDim}`);
      batch.set(s.wplus, i * row);
    });
    const out = await this.toStyles.run({ wplus: new ort.Tensor('float32', batch, [states.length, numWs, wDim]) });
    const styles = tensorData(out, 'styles', 'to_styles.onnx');
    states.forEach((s, i) => {
      const d = s.styleDelta;
      if (!d) return;
      const base = i * styleChannels;
      for (let j = 0; j < styleChannels; j++) styles[base + j] += d[j];
    });
    return styles;
  }

  async encode(images: Float32Array, n: number): Promise<LatentState[]> {
    const { encoder, numWs, wDim, name } = this.summary;
    if (!this.encoder || !encoder) {
      throw new EngineError('no_encoder', `pack ${name} has no image encoder; add one with: npm run toolkit -- convert-encoder --format e4e --checkpoint e4e_ffhq_encode.pt --out ${this.pack.dir}`);
    }
    const size = encoder.inputSize;
    if (!Number.isInteger(n) || n < 0 || images.length !== n * 3 * size * size) {
      throw new EngineError('bad_image_shape', `encode got ${images.length} values for ${n} images; the encoder takes [${n}, 3, ${size}, ${size}] (aligned RGB faces in [-1, 1])`);
    }
    if (n === 0) return [];
    const out = await this.encoder.run({ images: new ort.Tensor('float32', images, [n, 3, size, size]) });
    const w = tensorData(out, 'wplus', 'encoder.onnx');
    const row = numWs * wDim;
    if (w.length !== n * row) throw new EngineError('bad_pack', `encoder.onnx returned ${w.length / n} values per image; this pack needs W+ ${numWs}×${wDim}`);
    return Array.from({ length: n }, (_, i) => ({ wplus: w.slice(i * row, (i + 1) * row) }));
  }

  async render(states: LatentState[]): Promise<RenderedImage[]> {
    if (states.length === 0) return [];
    const { styleChannels, resolution } = this.summary;
    const styles = await this.styles(states);
    const out = await this.synthesis.run({ styles: new ort.Tensor('float32', styles, [states.length, styleChannels]) });
    const image = tensorData(out, 'image', 'synthesis.onnx');
    const size = 3 * resolution * resolution;
    return states.map((_, i) => ({ raw: image.slice(i * size, (i + 1) * size), resolution }));
  }

  async close(): Promise<void> {
    const sessions = [this.mapping, this.toStyles, this.synthesis, this.textEncoder, ...this.mappers.values(), ...[...this.fileMappers.values()].map((f) => f.session), ...(this.encoder ? [this.encoder] : [])];
    await Promise.all(sessions.map((s) => s.release()));
  }
}

/**
 * Drops the zero padding after the longest text when the text encoder takes a dynamic sequence
 * length: CLIP's causal attention and end-token pooling make the result the same, for a fraction
 * of the work (a template text is ~10 of the 77 tokens).
 */
export function trimPadding(ids: BigInt64Array, rows: number, ctx: number, session: ort.InferenceSession): BigInt64Array {
  const meta = session.inputMetadata.find((m) => m.name === 'input_ids');
  if (!meta?.isTensor || typeof meta.shape[1] !== 'string') return ids;
  let used = 1;
  for (let r = 0; r < rows; r++) {
    for (let t = ctx - 1; t >= used; t--) {
      if (ids[r * ctx + t] !== 0n) {
        used = t + 1;
        break;
      }
    }
  }
  if (used === ctx) return ids;
  const out = new BigInt64Array(rows * used);
  for (let r = 0; r < rows; r++) out.set(ids.subarray(r * ctx, r * ctx + used), r * used);
  return out;
}

async function loadTokenizer(path: string): Promise<TextTokenizer> {
  const { ClipTokenizer } = await import('./tokenizer.ts');
  return await ClipTokenizer.load(path);
}

/** Opens a model pack: validates pack.json and the generator files; sessions load on first use. */
export async function openPack(dir: string, opts: OpenOptions = {}): Promise<StyleClipEngine> {
  const device = resolveDevice(opts.device);
  const pack = await loadPack(dir);
  return new StyleClipEngine(pack, device, opts);
}

