// A tiny deterministic stand-in Engine for bot-core tests: no ONNX, instant unless told otherwise.
// It runs in the engine's worker thread, so a test steers it through the pack it opens: the pack.json's
// `fakeEngine` field (FakeEngineOptions; makeTestPack(name, { fakeEngine }) or makeTestBot({ engine })).
// The real engine ignores that field.
import fs from 'node:fs';
import path from 'node:path';
import { EngineError, type EditInfo, type EditSpec, type Engine, type LatentState, type RenderedImage } from '../../src/engine/types.ts';

export interface FakeEngineOptions {
  /** Every edit batch takes this long. */
  delayMs?: number;
  /** Prompts whose first try fails with a transient error (once per prompt while the thread lives). */
  failFirstTries?: string[];
  /** Prompts that end the engine's thread, as a native crash would. */
  crashOn?: string[];
  /** Prompts no style channel passes for: a permanent EngineError. */
  noChannelsFor?: string[];
  /** The pack cannot be opened (EngineError "bad_pack"). */
  openFails?: boolean;
}

const R = 8;
const W_DIM = 4;
const NUM_WS = 2;
const S = 6;
const failedOnce = new Set<string>();
export const calls = { batches: [] as number[] };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The pack's `fakeEngine` options; none when the folder has no pack.json. */
function optionsOf(dir: string): FakeEngineOptions {
  try {
    return (JSON.parse(fs.readFileSync(path.join(dir, 'pack.json'), 'utf8')) as { fakeEngine?: FakeEngineOptions }).fakeEngine ?? {};
  } catch {
    return {};
  }
}

export async function openPack(dir: string): Promise<Engine> {
  const { delayMs = 0, failFirstTries = [], crashOn = [], noChannelsFor = [], openFails = false } = optionsOf(dir);
  if (openFails) throw new EngineError('bad_pack', `pack ${dir} is broken`);
  return {
    summary: {
      name: 'fake',
      dir,
      untrained: true,
      resolution: R,
      wDim: W_DIM,
      numWs: NUM_WS,
      styleChannels: S,
      convChannels: 4,
      mappers: [{ name: 'curly hair', slug: 'curly_hair' }],
      defaults: { neutral: 'face', targetTemplate: 'face with {}', strength: 4.1, threshold: null },
    },
    async sample(seeds: number[]) {
      return seeds.map((seed) => ({ wplus: Float32Array.from({ length: W_DIM * NUM_WS }, (_, i) => Math.sin(seed + i)) }));
    },
    async edit(states: LatentState[], specs: EditSpec[]) {
      if (delayMs) await sleep(delayMs);
      if (specs.some((s) => crashOn.includes(s.prompt))) process.exit(3); // in a worker thread: ends only the thread
      return states.map((state, i) => {
        const spec = specs[i];
        if (noChannelsFor.includes(spec.prompt)) throw new EngineError('no_channels', `no style channel passes threshold for "${spec.prompt}"`);
        if (failFirstTries.includes(spec.prompt) && !failedOnce.has(spec.prompt)) {
          failedOnce.add(spec.prompt);
          throw new Error('transient device hiccup');
        }
        const info: EditInfo =
          spec.method === 'mapper'
            ? { method: 'mapper', mapper: spec.mapper ?? 'curly_hair', strength: spec.strength }
            : { method: 'global', target: spec.prompt, neutral: 'face', strength: spec.strength, threshold: typeof spec.threshold === 'number' ? spec.threshold : 0.15, channels: 3 };
        const delta = Float32Array.from({ length: S }, (_, k) => (state.styleDelta?.[k] ?? 0) + spec.strength * (k % 2 ? 1 : -1) * 0.1);
        return { state: { wplus: state.wplus, styleDelta: delta }, info };
      });
    },
    async render(states: LatentState[]): Promise<RenderedImage[]> {
      calls.batches.push(states.length);
      return states.map((s) => {
        const shift = (s.styleDelta?.[0] ?? 0) + s.wplus[0];
        return { raw: Float32Array.from({ length: 3 * R * R }, (_, i) => Math.tanh(Math.sin(i * 0.3 + shift))), resolution: R };
      });
    },
    async encode(): Promise<LatentState[]> {
      throw new EngineError('no_encoder', 'pack fake has no image encoder');
    },
    async close() {},
  };
}
