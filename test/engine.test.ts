// Engine behaviour on the tiny pack: determinism, edits, caching, batching, errors.
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPack } from '../src/engine/check.ts';
import { openPack, type StyleClipEngine, type TextTokenizer } from '../src/engine/index.ts';
import { writeNpy } from '../src/engine/npy.ts';
import { ClipTokenizer } from '../src/engine/tokenizer.ts';
import type { EditSpec, LatentState } from '../src/engine/types.ts';
import { ROOT, tinyPack } from './helpers/engine-packs.ts';

const pack = tinyPack();
const tmp = mkdtempSync(join(tmpdir(), 'engine-test-'));
let engine: StyleClipEngine;
const batches: number[] = [];

const global = (prompt: string, strength: number, extra: Partial<EditSpec> = {}): EditSpec => ({ method: 'global', prompt, strength, ...extra });
const same = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => x === b[i]);
const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

beforeAll(async () => {
  const real = await ClipTokenizer.load(join(pack, 'clip/tokenizer.json'));
  // Records how many texts each tokenizer call gets (one call per text-encoder run).
  const counting: TextTokenizer = {
    tokenize(texts, ctx) {
      batches.push(texts.length);
      return real.tokenize(texts, ctx);
    },
  };
  engine = await openPack(pack, { tokenizer: counting, threads: 1 });
});
afterAll(async () => {
  await engine.close();
  rmSync(tmp, { recursive: true, force: true });
});

describe('generation', () => {
  it('is deterministic: same seed, same image, across engines', async () => {
    const [a] = await engine.render(await engine.sample([7], 0.7));
    const other = await openPack(pack, { threads: 2 });
    const [b] = await other.render(await other.sample([7], 0.7));
    await other.close();
    expect(same(a.raw, b.raw)).toBe(true);
    expect(a.raw.length).toBe(3 * engine.summary.resolution ** 2);
  });

  it('different seeds and truncations give different latents and images', async () => {
    const [s1, s2] = await engine.sample([1, 2]);
    const [t1] = await engine.sample([1], 0.5);
    expect(same(s1.wplus, s2.wplus)).toBe(false);
    expect(same(s1.wplus, t1.wplus)).toBe(false);
    const [i1, i2] = await engine.render([s1, s2]);
    expect(maxDiff(i1.raw, i2.raw)).toBeGreaterThan(0.01);
  });

  it('ψ = 0 gives w_avg on every row', async () => {
    const [s] = await engine.sample([3], 0);
    const [t] = await engine.sample([4], 0);
    expect(same(s.wplus, t.wplus)).toBe(true);
  });

  it('renders a batch like one-by-one renders', async () => {
    const states = await engine.sample([5, 6, 7]);
    const batch = await engine.render(states);
    for (let i = 0; i < 3; i++) {
      const [one] = await engine.render([states[i]]);
      expect(maxDiff(batch[i].raw, one.raw)).toBeLessThan(1e-5);
    }
  });
});

describe('global edits', () => {
  let base: LatentState;
  beforeAll(async () => {
    [base] = await engine.sample([11], 0.7);
  });

  it('strength 0 reproduces the original exactly', async () => {
    const [orig] = await engine.render([base]);
    const [{ state, info }] = await engine.edit([base], [global('curly hair', 0)]);
    const [img] = await engine.render([state]);
    expect(same(orig.raw, img.raw)).toBe(true);
    expect(info.channels).toBeGreaterThan(0);
  });

  it('different prompts and strengths give different images; reports channels', async () => {
    const specs = [global('curly hair', 4), global('curly hair', 8), global('blue eyes', 4)];
    const edited = await engine.edit([base, base, base], specs);
    const imgs = await engine.render(edited.map((e) => e.state));
    expect(maxDiff(imgs[0].raw, imgs[1].raw)).toBeGreaterThan(1e-3);
    expect(maxDiff(imgs[0].raw, imgs[2].raw)).toBeGreaterThan(1e-3);
    expect(edited[0].info).toMatchObject({ method: 'global', target: 'face with curly hair', neutral: 'face', strength: 4 });
    expect(edited[0].info.channels).toBe(edited[1].info.channels);
  });

  it('encodes 158 texts in one call per new prompt and caches Δt across α and β', async () => {
    const before = engine.textEncoderCalls;
    const n = batches.length;
    await engine.edit([base], [global('red lips', 2)]);
    expect(engine.textEncoderCalls).toBe(before + 1);
    expect(batches.slice(n)).toEqual([158]);
    await engine.edit([base, base], [global('red lips', 5), global('red lips', -3, { threshold: 0.05 })]);
    await engine.direction('red lips', undefined, 0.01);
    expect(engine.textEncoderCalls).toBe(before + 1);
    await engine.edit([base], [global('red lips', 2, { neutral: 'face with lips' })]);
    expect(engine.textEncoderCalls).toBe(before + 2);
  });

  it('a batch of the same edit shares one ΔS', async () => {
    const [a, b] = await Promise.all([engine.direction('wavy hair', undefined, 0.05), engine.direction('wavy hair', undefined, 0.05)]);
    expect(b).toBe(a);
  });

  it('uses the automatic β when the pack has none; a higher β moves fewer channels', async () => {
    expect(engine.summary.defaults.threshold).toBeNull();
    const auto = await engine.direction('curly hair');
    expect(auto.threshold).toBeGreaterThanOrEqual(0.1);
    expect(auto.threshold).toBeLessThanOrEqual(0.29);
    const low = await engine.direction('curly hair', undefined, 0.02);
    expect(low.channels).toBeGreaterThan(auto.channels);
  });

  it('ΔS is zero on toRGB channels and ±std at the strongest channel', async () => {
    const d = await engine.direction('curly hair', undefined, 0.05);
    const layout = engine.pack.layout;
    engine.pack.json.styleLayout.forEach((l, i) => {
      if (!l.toRgb) return;
      const slice = d.delta.subarray(layout.offsets[i], layout.offsets[i] + l.channels);
      expect(slice.every((x) => x === 0)).toBe(true);
    });
    expect(d.delta.filter((x) => x !== 0).length).toBe(d.channels);
  });

  it('chains: global deltas add up; a mapper edit keeps the style offset', async () => {
    const [once] = await engine.edit([base], [global('curly hair', 2)]);
    const [twice] = await engine.edit([once.state], [global('curly hair', 2)]);
    const [direct] = await engine.edit([base], [global('curly hair', 4)]);
    expect(maxDiff(twice.state.styleDelta!, direct.state.styleDelta!)).toBeLessThan(1e-6);
    const [mapped] = await engine.edit([twice.state], [{ method: 'mapper', prompt: 'purple hair', strength: 1 }]);
    expect(mapped.state.styleDelta).toBe(twice.state.styleDelta);
    expect(same(mapped.state.wplus, base.wplus)).toBe(false);
  });

  it('no channel above β → a clear error suggesting a lower threshold', async () => {
    await expect(engine.direction('curly hair', undefined, 1)).rejects.toThrow(/no style channel is above the threshold β=1; use a lower threshold/);
  });

  it('rejects an over-long prompt, NaN/huge strengths and β outside [0, 1]', async () => {
    await expect(engine.edit([base], [global('very '.repeat(70) + 'curly hair', 1)])).rejects.toThrow(/too long/);
    await expect(engine.edit([base], [global('curly hair', NaN)])).rejects.toThrow(/strength must be a finite number/);
    await expect(engine.edit([base], [global('curly hair', 51)])).rejects.toThrow(/out of range/);
    await expect(engine.edit([base], [global('curly hair', 1, { threshold: 1.5 })])).rejects.toThrow(/threshold β must be in \[0, 1\]/);
    await expect(engine.edit([base], [global('', 1)])).rejects.toThrow(/prompt is empty/);
  });
});

describe('mapper edits', () => {
  it('picks the mapper by prompt, name or slug; strength 0 is the identity', async () => {
    const [base] = await engine.sample([21]);
    const [a, b, zero] = await engine.edit(
      [base, base, base],
      [
        { method: 'mapper', prompt: 'curly hair', strength: 1 },
        { method: 'mapper', prompt: 'whatever', mapper: 'Curly-Hair!', strength: 1 },
        { method: 'mapper', prompt: 'curly hair', strength: 0 },
      ],
    );
    expect(a.info).toEqual({ method: 'mapper', mapper: 'curly_hair', strength: 1 });
    expect(same(a.state.wplus, b.state.wplus)).toBe(true);
    expect(same(zero.state.wplus, base.wplus)).toBe(true);
  });

  it('unknown mapper → error listing the available ones', async () => {
    const [base] = await engine.sample([21]);
    await expect(engine.edit([base], [{ method: 'mapper', prompt: 'mohawk', strength: 1 }])).rejects.toThrow(
      /no mapper "mohawk" in pack tiny; available: curly hair \(curly_hair\), purple hair \(purple_hair\)/,
    );
  });
});

describe('encoder', () => {
  const size = 256;
  const faces = (n: number, seed: number) => Float32Array.from({ length: n * 3 * size * size }, (_, i) => Math.sin(i * 0.013 + seed * 1.7) * 0.9);

  it('encodes a batch like one-by-one, to W+ the generator renders', async () => {
    expect(engine.summary.encoder).toEqual({ inputSize: size, format: 'e4e' });
    const batch = faces(2, 1);
    const both = await engine.encode(batch, 2);
    const [first] = await engine.encode(batch.slice(0, 3 * size * size), 1);
    expect(both).toHaveLength(2);
    expect(both[0].wplus.length).toBe(engine.summary.numWs * engine.summary.wDim);
    expect(maxDiff(both[0].wplus, first.wplus)).toBeLessThan(1e-5);
    expect(maxDiff(both[0].wplus, both[1].wplus)).toBeGreaterThan(1e-3);
    const [image] = await engine.render([both[1]]);
    expect(image.raw.every(Number.isFinite)).toBe(true);
    expect(await engine.encode(new Float32Array(0), 0)).toEqual([]);
  });

  it('wrong image sizes and packs without an encoder get one-line errors', async () => {
    await expect(engine.encode(new Float32Array(3 * 128 * 128), 1)).rejects.toThrow(/encode got 49152 values for 1 images; the encoder takes \[1, 3, 256, 256\]/);
    const dir = join(tmp, 'noencoder');
    cpSync(pack, dir, { recursive: true });
    const json = JSON.parse(readFileSync(join(dir, 'pack.json'), 'utf8'));
    delete json.encoder;
    writeFileSync(join(dir, 'pack.json'), JSON.stringify(json));
    const e = await openPack(dir);
    expect(e.summary.encoder).toBeUndefined();
    await expect(e.encode(faces(1, 0), 1)).rejects.toMatchObject({ code: 'no_encoder', message: expect.stringMatching(/has no image encoder; add one with: npm run toolkit -- convert-encoder/) });
    await e.close();
    expect((await checkPack(dir)).problems).toEqual([]);
  });
});

describe('pack loading and checking', () => {
  function copyPack(name: string): string {
    const dir = join(tmp, name);
    cpSync(pack, dir, { recursive: true });
    return dir;
  }

  it('the tiny pack passes pack check', async () => {
    const r = await checkPack(pack);
    expect(r.problems).toEqual([]);
    expect(r.summary).toMatch(/64px.*encoder: e4e 256px/);
  });

  it('checks the encoder graph against the generator and its input size', async () => {
    const dir = copyPack('badencoder');
    const json = JSON.parse(readFileSync(join(dir, 'pack.json'), 'utf8'));
    json.encoder.inputSize = 128;
    writeFileSync(join(dir, 'pack.json'), JSON.stringify(json));
    expect((await checkPack(dir)).problems).toEqual([expect.stringMatching(/^encoder: input "images" is \[.*, 3, 256, 256\], expected \[B, 3, 128, 128\]$/)]);
    json.encoder = { ...json.encoder, inputSize: 256, file: 'mappers/curly_hair.onnx' };
    writeFileSync(join(dir, 'pack.json'), JSON.stringify(json));
    expect((await checkPack(dir)).problems.join('\n')).toMatch(/encoder: no input named "images" \(has wplus\)/);
    rmSync(join(dir, 'encoder/encoder.onnx'));
    json.encoder.file = 'encoder/encoder.onnx';
    writeFileSync(join(dir, 'pack.json'), JSON.stringify(json));
    expect((await checkPack(dir)).problems).toEqual([expect.stringMatching(/^missing encoder file .*encoder\.onnx$/)]);
    json.encoder = { file: 'encoder/encoder.onnx' };
    writeFileSync(join(dir, 'pack.json'), JSON.stringify(json));
    expect((await checkPack(dir)).problems).toEqual(['pack.json: encoder needs file, inputSize (a positive integer) and format']);
  });

  it('missing pack → one-line error naming the fix', async () => {
    await expect(openPack(join(tmp, 'nope'))).rejects.toThrow(/no model pack at .*nope \(pack\.json not found\); build one with/);
  });

  it('names fs3 rows that do not match the conv channels, and other wrong shapes', async () => {
    const dir = copyPack('badfs3');
    await writeNpy(join(dir, 'directions/fs3.npy'), [7, 32], new Float32Array(7 * 32));
    await writeNpy(join(dir, 'generator/w_avg.npy'), [3], new Float32Array(3));
    const { problems } = await checkPack(dir);
    expect(problems.join('\n')).toMatch(/fs3 .* has shape \[7, 32\], expected \[200, 32\] \(7 rows, but styleLayout has 200 conv channels\)/);
    expect(problems.join('\n')).toMatch(/w_avg .* has shape \[3\], expected \[32\]/);
    const e = await openPack(dir);
    await expect(e.direction('curly hair')).rejects.toThrow(/fs3\.npy has shape \[7, 32\], expected \[200, 32\]/);
  });

  it('corrupt ONNX → one-line error at first use and in pack check', async () => {
    const dir = copyPack('corrupt');
    writeFileSync(join(dir, 'generator/synthesis.onnx'), 'not a model');
    const e = await openPack(dir);
    const states = await e.sample([1]);
    await expect(e.render(states)).rejects.toThrow(/cannot load synthesis\.onnx .*rebuild the pack/);
    const { problems } = await checkPack(dir);
    expect(problems).toHaveLength(1);
  });

  it('a layout that does not add up and missing files are reported', async () => {
    const dir = copyPack('layout');
    const json = JSON.parse(readFileSync(join(dir, 'pack.json'), 'utf8'));
    json.styleLayout[3].channels = 5;
    writeFileSync(join(dir, 'pack.json'), JSON.stringify(json));
    rmSync(join(dir, 'clip/tokenizer.json'));
    const { problems } = await checkPack(dir);
    expect(problems).toEqual([
      expect.stringMatching(/^missing tokenizer file /),
      expect.stringMatching(/^fs3 .* expected \[173, 32\] \(200 rows, but styleLayout has 173 conv channels\)$/),
      expect.stringMatching(/^std .* has shape \[304\], expected \[277\]$/),
      expect.stringMatching(/^mean .* has shape \[304\], expected \[277\]$/),
      expect.stringMatching(/^to_styles: output "styles" is \[.*, 304\], expected \[B, 277\]$/),
      expect.stringMatching(/^synthesis: input "styles" is \[.*, 304\], expected \[B, 277\]$/),
    ]);
  });

  it('CUDA: a clear error when the provider is not installed', async () => {
    const e = await openPack(pack, { device: 'cuda' });
    expect(e.provider).toBe('CUDAExecutionProvider');
    const binDir = join(ROOT, 'node_modules/onnxruntime-node/bin/napi-v6', process.platform, process.arch);
    const attempt = e.sample([1]);
    if (existsSync(join(binDir, 'libonnxruntime_providers_cuda.so'))) await attempt; // CUDA installed: it runs
    else await expect(attempt).rejects.toThrow(/^the CUDA execution provider is not installed in onnxruntime-node .*or use --device cpu$/);
    await e.close();
    await expect(openPack(pack, { device: 'tpu' })).rejects.toThrow(/unknown device "tpu"; use cpu or cuda/);
  });
});
