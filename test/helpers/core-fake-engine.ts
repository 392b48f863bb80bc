// A tiny deterministic stand-in Engine for bot-core tests: no ONNX, instant, with prompts that misbehave on purpose.
//   "nochannels …" → EngineError (permanent)      "flaky …" → fails the first try per prompt (transient)
//   "slow …"       → each batch takes 300 ms       FAKE_ENGINE_DELAY_MS → every batch takes that long
//   "crash …"      → the engine's thread exits (as on a native crash)
import { EngineError, type EditInfo, type EditSpec, type Engine, type LatentState, type RenderedImage } from '../../src/engine/types.ts';

const R = 8;
const W_DIM = 4;
const NUM_WS = 2;
const S = 6;
const flakySeen = new Set<string>();
export const calls = { batches: [] as number[] };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function openPack(dir: string): Promise<Engine> {
  if (dir.includes('broken')) throw new EngineError('bad_pack', `pack ${dir} is broken`);
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
      const delay = Number(process.env.FAKE_ENGINE_DELAY_MS ?? 0) + (specs.some((s) => s.prompt.startsWith('slow')) ? 300 : 0);
      if (delay) await sleep(delay);
      if (specs.some((s) => s.prompt.startsWith('crash'))) process.exit(3); // in a worker thread: ends only the thread
      return states.map((state, i) => {
        const spec = specs[i];
        if (spec.prompt.startsWith('nochannels')) throw new EngineError('no_channels', `no style channel passes threshold for "${spec.prompt}"`);
        if (spec.prompt.startsWith('flaky') && !flakySeen.has(spec.prompt)) {
          flakySeen.add(spec.prompt);
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
