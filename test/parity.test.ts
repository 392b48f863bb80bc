// Parity with the official PyTorch reference (models/toolkit/PARITY.md): the engine reproduces the
// toolkit's outputs from the packs alone, on an FFHQ-like layout and an uneven-width generator.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPack, type StyleClipEngine } from '../src/engine/index.ts';
import { statesFromArray } from '../src/engine/latent.ts';
import { parseNpy } from '../src/engine/npy.ts';
import { seedToZ } from '../src/engine/random.ts';
import type { LatentState } from '../src/engine/types.ts';
import { parityFixtures } from './helpers/engine-packs.ts';

const root = parityFixtures();
const cases: string[] = JSON.parse(readFileSync(join(root, 'index.json'), 'utf8')).cases;

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

it('has an FFHQ-like case and a non-FFHQ case', () => {
  expect(cases.length).toBeGreaterThanOrEqual(2);
});

describe.each(cases)('parity case %s', (name) => {
  const dir = join(root, name);
  const spec = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8'));
  const npy = (file: string) => parseNpy(readFileSync(join(dir, file)), file);
  let engine: StyleClipEngine;
  let wplus: LatentState[];

  beforeAll(async () => {
    engine = await openPack(join(dir, spec.pack), { threads: 1 });
    const w = npy(spec.generate.wplus);
    wplus = statesFromArray(w.shape, w.data, { numWs: spec.numWs, wDim: spec.wDim, styleChannels: spec.styleChannels }, 'wplus');
  });
  afterAll(() => engine?.close());

  it('reads the pack layout', () => {
    expect(engine.summary.styleChannels).toBe(spec.styleChannels);
    expect(engine.summary.convChannels).toBe(spec.convChannels);
  });

  it('renders W+ like the reference generator (1e-3)', async () => {
    const images = await engine.render(wplus);
    expect(maxAbsDiff(concat(images.map((i) => i.raw)), npy(spec.generate.raw).data)).toBeLessThan(1e-3);
  });

  it('samples seed → z → w → ψ like numpy and the reference mapping', async () => {
    const { seed, truncation } = spec.sample;
    expect(Array.from(seedToZ(seed, spec.zDim))).toEqual(Array.from(npy(spec.sample.z).data));
    const [state] = await engine.sample([seed], truncation);
    expect(maxAbsDiff(state.wplus, npy(spec.sample.wplus).data)).toBeLessThan(1e-5);
    const [image] = await engine.render([state]);
    expect(maxAbsDiff(image.raw, npy(spec.sample.raw).data)).toBeLessThan(1e-3);
  });

  it('computes Δt, ΔS and the channel count like GetDt/GetBoundary (1e-5)', async () => {
    const g = spec.global;
    const { dt, norm } = await engine.textDirection(g.target, g.neutral);
    expect(maxAbsDiff(dt, npy(g.deltaT).data)).toBeLessThan(1e-5);
    if (g.deltaTNorm !== undefined) expect(norm).toBeCloseTo(g.deltaTNorm, 4);
    const d = await engine.direction(g.target, g.neutral, g.threshold);
    expect(d.channels).toBe(g.channels);
    expect(maxAbsDiff(d.delta, npy(g.deltaS).data)).toBeLessThan(1e-5);
  });

  it('renders the global edit s + α·ΔS (1e-3)', async () => {
    const g = spec.global;
    const edited = await engine.edit(wplus, wplus.map(() => ({ method: 'global' as const, prompt: g.target, neutral: g.neutral, strength: g.strength, threshold: g.threshold })));
    expect(edited[0].info).toMatchObject({ target: g.target, neutral: g.neutral, channels: g.channels, threshold: g.threshold });
    const images = await engine.render(edited.map((e) => e.state));
    expect(maxAbsDiff(concat(images.map((i) => i.raw)), npy(g.raw).data)).toBeLessThan(1e-3);
  });

  it('applies the mapper ŵ = w + α·0.1·M(w) (1e-5) and renders it (1e-3)', async () => {
    const m = spec.mapper;
    const edited = await engine.edit(wplus, wplus.map(() => ({ method: 'mapper' as const, prompt: m.mapper, mapper: m.mapper, strength: m.strength })));
    expect(maxAbsDiff(concat(edited.map((e) => e.state.wplus)), npy(m.wplusEdited).data)).toBeLessThan(1e-5);
    const images = await engine.render(edited.map((e) => e.state));
    expect(maxAbsDiff(concat(images.map((i) => i.raw)), npy(m.raw).data)).toBeLessThan(1e-3);
  });

  it('encodes faces to W+ like the official e4e + latent_avg (1e-4)', async () => {
    const e = spec.encode;
    const images = npy(e.images);
    expect(engine.summary.encoder).toEqual({ inputSize: images.shape[2], format: 'e4e' });
    const states = await engine.encode(images.data, images.shape[0]);
    expect(states).toHaveLength(images.shape[0]);
    expect(maxAbsDiff(concat(states.map((s) => s.wplus)), npy(e.wplus).data)).toBeLessThan(1e-4);
  });
});
