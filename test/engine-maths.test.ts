import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { trimPadding } from '../src/engine/index.ts';
import { autoThreshold, countChannels, ensembleEmbedding, relevance, styleDirection, textDirection } from '../src/engine/direction.ts';
import { computeLayout, expectedLayers, validatePackJson } from '../src/engine/pack.ts';
import { resolveTexts } from '../src/engine/prompt.ts';
import { IMAGENET_TEMPLATES_79, templateTexts } from '../src/engine/templates.ts';
import { EngineError } from '../src/engine/types.ts';
import { tinyPackJson } from './helpers/engine-fixtures.ts';
import { ROOT } from './helpers/engine-packs.ts';

const layout = computeLayout([
  { name: 'conv1', resolution: 4, channels: 3, wIndex: 0, toRgb: false },
  { name: 'to_rgb1', resolution: 4, channels: 2, wIndex: 1, toRgb: true },
  { name: 'convs.0', resolution: 8, channels: 2, wIndex: 1, toRgb: false },
]);

describe('style layout', () => {
  it('places conv channels in fs3 order and skips toRGB', () => {
    expect(layout.styleChannels).toBe(7);
    expect(layout.convChannels).toBe(5);
    expect(Array.from(layout.convIndex)).toEqual([0, 1, 2, 5, 6]);
    expect(layout.offsets).toEqual([0, 3, 5]);
  });

  it('knows the FFHQ 1024 layout: 26 layers, 18 W+ rows', () => {
    const layers = expectedLayers(1024);
    expect(layers).toHaveLength(26);
    expect(layers[25]).toEqual(['to_rgbs.7', 1024, 17, true]);
    expect(layers[2]).toEqual(['convs.0', 8, 1, false]);
  });
});

describe('global direction maths', () => {
  it('Δt: per-template normalise, average, normalise, difference, normalise', () => {
    // 2 templates, dim 2: target embeds along x (any length), neutral along y.
    const embeds = new Float32Array([3, 0, 5, 0, 0, 2, 0, 7]);
    const { dt, norm } = textDirection(embeds, 2, 2);
    expect(dt[0]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(dt[1]).toBeCloseTo(-Math.SQRT1_2, 6);
    expect(norm).toBeCloseTo(Math.SQRT2, 6);
    const e = ensembleEmbedding(new Float32Array([1, 0, 0, 1]), 2, 0, 2);
    expect(e[0]).toBeCloseTo(Math.SQRT1_2, 12);
  });

  it('identical texts give a clear error, never NaN', () => {
    const embeds = new Float32Array([1, 2, 1, 2]);
    expect(() => textDirection(embeds, 2, 1)).toThrow(/zero length/);
  });

  it('ΔS: threshold, divide by max |r|, times std, toRGB zero', () => {
    const fs3 = new Float32Array([1, 0, 0, 1, 0.5, 0.5, -0.8, 0, 0.05, 0]); // 5 rows × 2
    const r = relevance(fs3, 2, new Float32Array([1, 0]));
    expect(Array.from(r)).toEqual([1, 0, 0.5, Math.fround(-0.8), Math.fround(0.05)]);
    const std = new Float32Array([2, 2, 2, 9, 9, 3, 3]);
    const { delta, channels } = styleDirection(r, 0.1, std, layout);
    expect(channels).toBe(3);
    // conv channels → S indices 0,1,2,5,6; toRGB (3,4) stay 0
    expect(Array.from(delta)).toEqual([2, 0, 1, 0, 0, Math.fround(-0.8 * 3), 0]);
    // max |r| 0.8 when the top channel is removed: it becomes ±1·std
    const r2 = new Float32Array([0.4, 0, -0.8, 0.2, 0]);
    const d2 = styleDirection(r2, 0.3, std, layout);
    expect(d2.channels).toBe(2);
    expect(d2.delta[0]).toBeCloseTo(1, 6);
    expect(d2.delta[2]).toBeCloseTo(-2, 6);
  });

  it('no channel above β → error that suggests a lower threshold', () => {
    const r = new Float32Array([0.05, -0.02, 0, 0.01, 0]);
    const run = () => styleDirection(r, 0.2, new Float32Array(7).fill(1), layout);
    expect(run).toThrow(EngineError);
    expect(run).toThrow(/lower threshold.*0\.050/);
  });

  it('automatic β: largest of 0.10…0.29 keeping more than 20 channels, else 0.10', () => {
    const r = new Float32Array(100);
    for (let i = 0; i < 100; i++) r[i] = (i % 2 ? -1 : 1) * (i / 100);
    // |r| ≥ β for i ≥ 100β: 100 − 100β channels; > 20 ⇒ β < 0.8 → 0.29 is the top of the range
    expect(autoThreshold(r)).toBe(0.29);
    const few = new Float32Array(30).fill(0.15);
    expect(countChannels(few, 0.15)).toBe(30);
    expect(autoThreshold(few)).toBe(0.15);
    expect(autoThreshold(new Float32Array(10).fill(0.5))).toBe(0.1);
    // Other datasets ask for more channels (the GUI's > 100): 50 at |r| 0.2 are not enough there.
    const fifty = new Float32Array(200);
    fifty.fill(0.2, 0, 50);
    fifty.fill(0.125, 50, 150);
    expect(autoThreshold(fifty)).toBe(0.2);
    expect(autoThreshold(fifty, 100)).toBe(0.12);
  });
});

describe('neutral text rule', () => {
  const defaults = { neutral: 'face', targetTemplate: 'face with {}' };
  it('wraps a bare attribute in the pack template', () => {
    expect(resolveTexts('curly hair', undefined, defaults)).toEqual({ target: 'face with curly hair', neutral: 'face' });
    expect(resolveTexts('  big   $& eyes ', undefined, defaults)).toEqual({ target: 'face with big $& eyes', neutral: 'face' });
  });
  it('uses a prompt that mentions the neutral word verbatim', () => {
    expect(resolveTexts('smiling face', undefined, defaults)).toEqual({ target: 'smiling face', neutral: 'face' });
    expect(resolveTexts('Face with a beard', undefined, defaults).target).toBe('Face with a beard');
    expect(resolveTexts('surfaces', undefined, defaults).target).toBe('face with surfaces');
  });
  it('with --neutral both texts are verbatim', () => {
    expect(resolveTexts('face with blue eyes', 'face with eyes', defaults)).toEqual({ target: 'face with blue eyes', neutral: 'face with eyes' });
  });
  it('rejects empty prompts and a target equal to the neutral', () => {
    expect(() => resolveTexts('   ', undefined, defaults)).toThrow(/prompt is empty/);
    expect(() => resolveTexts('x', ' ', defaults)).toThrow(/neutral text is empty/);
    expect(() => resolveTexts('Face', undefined, defaults)).toThrow(/neutral text itself/);
  });
});

describe('templates', () => {
  it('has the 79 official templates, without "a photo of many {}."', () => {
    expect(IMAGENET_TEMPLATES_79).toHaveLength(79);
    expect(new Set(IMAGENET_TEMPLATES_79).size).toBe(79);
    expect(IMAGENET_TEMPLATES_79).not.toContain('a photo of many {}.');
    expect(IMAGENET_TEMPLATES_79[0]).toBe('a bad photo of a {}.');
    expect(IMAGENET_TEMPLATES_79[78]).toBe('a tattoo of the {}.');
    expect(templateTexts('cat')[34]).toBe('a cat in a video game.');
  });

  it('is identical to the toolkit copy (models/toolkit/styleclip_toolkit/bpe.py)', () => {
    const r = spawnSync('bash', ['scripts/toolkit.sh', '-c', 'import json; from styleclip_toolkit.bpe import IMAGENET_TEMPLATES_79 as T; print(json.dumps(T))'], {
      cwd: ROOT,
      encoding: 'utf8',
    });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(IMAGENET_TEMPLATES_79);
  });
});

describe('pack.json validation', () => {
  it('accepts a consistent pack.json', () => {
    expect(validatePackJson(tinyPackJson())).toEqual([]);
  });
  it('names what does not add up', () => {
    const j = tinyPackJson();
    j.numWs = 7;
    j.styleLayout[2].wIndex = 5;
    j.defaults.threshold = 2;
    const problems = validatePackJson(j);
    expect(problems.join('\n')).toMatch(/numWs is 7; a 16px generator uses 6/);
    expect(problems.join('\n')).toMatch(/styleLayout\[2\] is convs\.0@8 \(wIndex 5/);
    expect(problems.join('\n')).toMatch(/threshold must be null/);
    const short = tinyPackJson();
    short.styleLayout.pop();
    expect(validatePackJson(short)[0]).toMatch(/has 7 layers; a 16px generator has 8/);
    expect(validatePackJson({ format: 'x' })[0]).toMatch(/format/);
  });
});

describe('text-encoder padding', () => {
  const ids = BigInt64Array.from([1, 5, 2, 0, 0, 0, 1, 7, 8, 2, 0, 0].map(BigInt)); // 2 rows × 6
  const session = (seq: number | string) => ({ inputMetadata: [{ name: 'input_ids', isTensor: true, type: 'int64', shape: ['batch', seq] }] }) as never;
  it('trims to the longest text when the sequence axis is dynamic', () => {
    expect(Array.from(trimPadding(ids, 2, 6, session('sequence')))).toEqual([1, 5, 2, 0, 1, 7, 8, 2].map(BigInt));
  });
  it('keeps the full context when the graph fixes it', () => {
    expect(trimPadding(ids, 2, 6, session(6))).toBe(ids);
  });
});
