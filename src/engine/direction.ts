// Global-direction maths of the official StyleCLIP code (global_torch/StyleCLIP.py GetDt,
// manipulate.py GetBoundary/SplitS), on plain arrays so it is testable without models.
import { EngineError } from './types.ts';
import type { PackLayout } from './pack.ts';

/** Unit-normalised mean of unit-normalised rows [start, start+count) of a [*, dim] matrix. */
export function ensembleEmbedding(embeds: Float32Array, dim: number, start: number, count: number): Float64Array {
  const mean = new Float64Array(dim);
  for (let row = start; row < start + count; row++) {
    const base = row * dim;
    let sq = 0;
    for (let j = 0; j < dim; j++) sq += embeds[base + j] * embeds[base + j];
    const inv = 1 / Math.sqrt(sq);
    for (let j = 0; j < dim; j++) mean[j] += embeds[base + j] * inv;
  }
  return normalised(mean, 'text embedding');
}

function normalised(v: Float64Array, what: string): Float64Array {
  let sq = 0;
  for (const x of v) sq += x * x;
  const norm = Math.sqrt(sq);
  if (!(norm > 0) || !Number.isFinite(norm)) {
    throw new EngineError('degenerate_direction', `the ${what} has zero length: the target and neutral texts encode to the same point; reword the prompt`);
  }
  return v.map((x) => x / norm);
}

/**
 * Δt from the text-encoder output of [target × T templates, neutral × T templates]:
 * e(target) − e(neutral), normalised. Also returns the norm before normalising (diagnostics).
 */
export function textDirection(embeds: Float32Array, dim: number, templates: number): { dt: Float32Array; norm: number } {
  if (embeds.length !== 2 * templates * dim) throw new Error(`textDirection: expected ${2 * templates} embeddings of ${dim}`);
  const target = ensembleEmbedding(embeds, dim, 0, templates);
  const neutral = ensembleEmbedding(embeds, dim, templates, templates);
  const diff = target.map((x, j) => x - neutral[j]);
  let sq = 0;
  for (const x of diff) sq += x * x;
  const norm = Math.sqrt(sq);
  return { dt: Float32Array.from(normalised(diff, 'text direction Δt')), norm };
}

/** r = fs3 · Δt: relevance of each conv channel, fs3 [rows, dim] row-major. */
export function relevance(fs3: Float32Array, dim: number, dt: Float32Array): Float32Array {
  const rows = fs3.length / dim;
  const r = new Float32Array(rows);
  for (let i = 0; i < rows; i++) {
    let acc = 0;
    const base = i * dim;
    for (let j = 0; j < dim; j++) acc += fs3[base + j] * dt[j];
    r[i] = acc;
  }
  return r;
}

/** Channels that survive β (official rule: entries with |r| < β are zeroed). */
export function countChannels(r: Float32Array, beta: number): number {
  let n = 0;
  for (const x of r) if (Math.abs(x) >= beta) n++;
  return n;
}

/**
 * Official GUI rule: the largest β in 0.10…0.29 (step 0.01) keeping more than `minChannels`
 * channels, else 0.10. The GUI asks for more than 20 on FFHQ and more than 100 on other datasets.
 */
export function autoThreshold(r: Float32Array, minChannels = 20): number {
  for (let i = 29; i >= 10; i--) {
    const beta = i / 100;
    if (countChannels(r, beta) > minChannels) return beta;
  }
  return 0.1;
}

/**
 * ΔS over all style channels (layout order): r thresholded at β, divided by max|r|, times the
 * channel's std; toRGB channels stay 0. Throws when no channel survives (never NaN).
 */
export function styleDirection(
  r: Float32Array,
  beta: number,
  std: Float32Array,
  layout: PackLayout,
): { delta: Float32Array; channels: number } {
  let max = 0;
  let channels = 0;
  for (const x of r) {
    const a = Math.abs(x);
    if (a >= beta) {
      channels++;
      if (a > max) max = a;
    }
  }
  if (channels === 0 || max === 0) {
    const best = r.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    throw new EngineError(
      'no_channels',
      `no style channel is above the threshold β=${beta}; use a lower threshold (the most relevant channel scores ${best.toFixed(3)})`,
    );
  }
  const delta = new Float32Array(layout.styleChannels);
  const convIndex = layout.convIndex;
  for (let c = 0; c < r.length; c++) {
    const x = r[c];
    if (Math.abs(x) >= beta) {
      const s = convIndex[c];
      delta[s] = (x / max) * std[s];
    }
  }
  return { delta, channels };
}
