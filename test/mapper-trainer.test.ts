// Training a server's mapper on the tiny pack through the worker's supervisor (src/worker/mapper-trainer.ts, over
// the shared toolkit-process.ts): progress, a stop that leaves a checkpoint and no served mapper, a resume that
// finishes it into the server's mapper folder, a refusal.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readOverlay } from '../src/engine/overlay.ts';
import { readPack } from '../src/engine/pack.ts';
import { startMapperTraining, type TrainStep } from '../src/worker/mapper-trainer.ts';
import { tinyPackDir } from './helpers/core-bot.ts';

const dirs: string[] = [];
const tmp = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-train-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

describe('mapper training (worker supervisor)', () => {
  it('a stop checkpoints and serves nothing; the rerun resumes from the checkpoint and the mapper appears', async () => {
    const outDir = path.join(tmp(), 'playground_s1', 'tiny');
    const req = { packDir: tinyPackDir(), prompt: 'blue nose', steps: 4, outDir, device: 'cpu' as const, checkpointEvery: 100 };
    const steps: TrainStep[] = [];
    const first = startMapperTraining({ ...req, resume: false }, { onStep: (s) => (steps.push(s), first.stop('cancelled')) });
    const stopped = await first.outcome;
    expect(stopped).toMatchObject({ kind: 'stopped', reason: 'cancelled', checkpoint: path.join(outDir, 'mappers/blue_nose.train.npz') });
    expect(steps[0]).toMatchObject({ step: 1, steps: 4 });
    expect((await readOverlay(outDir, readPack(tinyPackDir()))).mappers).toEqual([]); // nothing half-made is served

    const starts: { step: number; resumed: boolean }[] = [];
    const second = startMapperTraining({ ...req, resume: true }, { onStart: (s) => starts.push(s) });
    expect(await second.outcome).toMatchObject({ kind: 'done', name: 'blue nose', slug: 'blue_nose', steps: 4 });
    expect(starts[0].resumed).toBe(true);
    expect(starts[0].step).toBeGreaterThanOrEqual(1);
    expect((await readOverlay(outDir, readPack(tinyPackDir()))).mappers.map((m) => m.slug)).toEqual(['blue_nose']);
  }, 120_000);

  it('a refusal reads as the toolkit\'s one line', async () => {
    const run = startMapperTraining({ packDir: path.join(tmp(), 'no-pack'), prompt: 'x', steps: 2, outDir: tmp(), resume: false, device: 'cpu' });
    const out = await run.outcome;
    expect(out.kind).toBe('refused');
    expect((out as { message: string }).message).toMatch(/pack/);
  }, 60_000);
});
