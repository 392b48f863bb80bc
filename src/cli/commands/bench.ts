import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import { readFile } from 'node:fs/promises';
import { alignFace, decodePhoto, encodeImage, encoderInput, encodeRgb, FaceDetector, findFace, openPack, pasteBack, PhotoPipeline, type StyleClipEngine } from '../../engine/index.ts';
import { int, parseFlags, requireStr, str } from '../args.ts';
import { PACK_FLAGS } from '../common.ts';

export const usage = `usage: styleclip bench --pack DIR [--batch N] [--runs N] [--json] [--device cpu|cuda] [--photo FILE]

Times the engine (median of --runs, default 5, after one warm-up) and prints one JSON object with
--json: synthesis_ms (render of N latents), direction_ms (a new prompt: one batched text-encoder
pass of 158 texts + fs3·Δt), global_edit_ms (cached direction, edit + render), mapper_edit_ms
(null without mappers), encode_ms (PNG of one image), edits_per_s, and the execution provider used.
With --photo (a photo with a face): detect_ms (BlazeFace, both passes), align_ms (FFHQ crop at
256²) and paste_ms (a face at the pack's resolution back into the photo); null without it.
invert_ms: the pack's encoder on one aligned face (null without an encoder). photo_edit_ms: a whole
photo edit from the decoded photo (detect, align, invert, cached global edit + render, paste back,
PNG of the photo and of the before → after strip); null without --photo or an encoder. Both also as
ratios to a one-image render timed in turn with them (invert_per_synthesis, photo_edit_per_synthesis).`;

export interface BenchResult {
  pack: string;
  resolution: number;
  batch: number;
  runs: number;
  device: string;
  provider: string;
  threads: number;
  load_ms: number;
  synthesis_ms: number;
  direction_ms: number;
  global_edit_ms: number;
  mapper_edit_ms: number | null;
  encode_ms: number;
  edits_per_s: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const round = (ms: number) => Math.round(ms * 100) / 100;

/** Median time of each workload, run in turn `runs` times after one warm-up each (sessions load,
 * caches fill); running them in turn lets workloads that are compared see the same machine load. */
async function timeInTurn(runs: number, ...fns: ((i: number) => Promise<unknown>)[]): Promise<number[]> {
  for (const fn of fns) await fn(-1);
  const times = fns.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < fns.length; k++) {
      const t0 = performance.now();
      await fns[k](i);
      times[k].push(performance.now() - t0);
    }
  }
  return times.map((t) => round(median(t)));
}

export async function benchEngine(engine: StyleClipEngine, batch: number, runs: number): Promise<BenchResult> {
  const seeds = Array.from({ length: batch }, (_, i) => i);
  const t0 = performance.now();
  const states = await engine.sample(seeds, 0.7);
  await engine.render(states.slice(0, 1));
  const load_ms = Math.round(performance.now() - t0);

  // A new prompt every run (β 0 keeps every channel, so any pack yields a direction).
  const [direction_ms] = await timeInTurn(runs, (i) => engine.direction(`bench prompt ${i + 1}`, 'face', 0));
  // Render and cached global edit alternate, so both see the same machine load.
  const global = { method: 'global' as const, prompt: 'bench prompt 1', neutral: 'face', threshold: 0 };
  const renderOnly = () => engine.render(states);
  const globalEdit = async (i: number) => {
    const edited = await engine.edit(states, states.map(() => ({ ...global, strength: 1 + i * 0.1 })));
    return engine.render(edited.map((e) => e.state));
  };
  const [synthesis_ms, global_edit_ms] = await timeInTurn(runs, renderOnly, globalEdit);
  const mapper = engine.summary.mappers[0];
  const mapperEdit = async (i: number) => {
    const spec = { method: 'mapper' as const, prompt: mapper.name, mapper: mapper.slug, strength: 1 + i * 0.1 };
    const edited = await engine.edit(states, states.map(() => spec));
    return engine.render(edited.map((e) => e.state));
  };
  const mapper_edit_ms = mapper ? (await timeInTurn(runs, mapperEdit))[0] : null;
  const [image] = await engine.render(states.slice(0, 1));
  const [encode_ms] = await timeInTurn(runs, () => encodeImage(image.raw, image.resolution, 'png'));
  return {
    pack: engine.summary.name,
    resolution: engine.summary.resolution,
    batch,
    runs,
    device: engine.device,
    provider: engine.provider,
    threads: engine.device === 'cpu' ? availableParallelism() : 0,
    load_ms,
    synthesis_ms,
    direction_ms,
    global_edit_ms,
    mapper_edit_ms,
    encode_ms,
    edits_per_s: round(batch / (global_edit_ms / 1000)),
  };
}

export interface PhotoBench {
  detect_ms: number | null;
  align_ms: number | null;
  paste_ms: number | null;
}

export interface InvertBench {
  invert_ms: number | null;
  photo_edit_ms: number | null;
  /** Each over a one-image render timed in turn with it (same machine load): the targets are ratios. */
  invert_per_synthesis: number | null;
  photo_edit_per_synthesis: number | null;
}

/**
 * invert_ms: one encoder call on an aligned face (a random one without --photo); photo_edit_ms: the
 * whole photo edit, every step the worker runs for a new photo, timed in turn with nothing cached but
 * the text direction (as a photo job with a known prompt).
 */
export async function benchInvert(engine: StyleClipEngine, path: string | undefined, runs: number): Promise<InvertBench> {
  const enc = engine.summary.encoder;
  if (!enc) return { invert_ms: null, photo_edit_ms: null, invert_per_synthesis: null, photo_edit_per_synthesis: null };
  const size = enc.inputSize;
  const pipeline = new PhotoPipeline(engine, { device: engine.device });
  try {
    let face = encoderInput({ width: size, height: size, rgb: new Uint8Array(size * size * 3).map((_, i) => (i * 37) % 256) });
    const photo = path ? await decodePhoto(await readFile(path)) : null;
    if (photo) face = encoderInput((await pipeline.invertPhoto(photo)).aligned);
    const spec = { method: 'global' as const, prompt: 'bench prompt 1', neutral: 'face', threshold: 0 };
    const photoEdit = async (i: number) => {
      const inv = await pipeline.invertPhoto(photo!);
      const [edited] = await engine.edit([inv.state], [{ ...spec, strength: 1 + i * 0.1 }]);
      const [image] = await engine.render([edited.state]);
      const done = await pipeline.finish(inv.photo, inv.inversion.transform, image, inv.aligned);
      return Promise.all([encodeRgb(done.pasted), encodeRgb(done.beforeAfter)]);
    };
    const [one] = await engine.sample([0], 0.7);
    const fns = [() => engine.render([one]), () => engine.encode(face, 1), ...(photo ? [photoEdit] : [])];
    const [synthesis, invert_ms, photo_edit_ms] = await timeInTurn(runs, ...fns);
    const per = (ms: number | undefined) => (ms === undefined ? null : round(ms / synthesis));
    return { invert_ms, photo_edit_ms: photo_edit_ms ?? null, invert_per_synthesis: per(invert_ms), photo_edit_per_synthesis: per(photo_edit_ms) };
  } finally {
    await pipeline.close();
  }
}

/** The photo steps on one photo: decode once, then detect, align and paste-back timed in turn. */
export async function benchPhoto(path: string | undefined, faceSize: number, runs: number, device: string): Promise<PhotoBench> {
  if (!path) return { detect_ms: null, align_ms: null, paste_ms: null };
  const photo = await decodePhoto(await readFile(path));
  const detector = new FaceDetector({ device: device === 'cuda' ? 'cuda' : 'cpu' });
  try {
    const face = await findFace(detector, photo);
    const aligned = await alignFace(photo, face, { size: 256 });
    const edited = new Uint8Array(faceSize * faceSize * 3).fill(128);
    const [detect_ms, align_ms, paste_ms] = await timeInTurn(
      runs,
      () => detector.detect(photo),
      () => alignFace(photo, face, { size: 256 }),
      () => pasteBack(photo, aligned.transform, edited, faceSize),
    );
    return { detect_ms, align_ms, paste_ms };
  } finally {
    await detector.close();
  }
}

export async function run(argv: string[]): Promise<number> {
  const args = parseFlags(argv, { ...PACK_FLAGS, batch: 'string', runs: 'string', json: 'boolean', photo: 'string' }, 'bench');
  if (args.help) {
    console.log(usage);
    return 0;
  }
  const dir = requireStr(args, 'pack', 'bench');
  const batch = int(args, 'batch', 1) ?? 1;
  const runs = int(args, 'runs', 1) ?? 5;
  const engine = await openPack(dir, { device: str(args, 'device') });
  try {
    const photo = str(args, 'photo');
    const result = {
      ...(await benchEngine(engine, batch, runs)),
      ...(await benchPhoto(photo, engine.summary.resolution, runs, engine.device)),
      ...(await benchInvert(engine, photo, runs)),
    };
    if (args.flags.json) console.log(JSON.stringify(result));
    else for (const [k, v] of Object.entries(result)) console.log(`${k.padEnd(16)} ${v}`);
    return 0;
  } finally {
    await engine.close();
  }
}
