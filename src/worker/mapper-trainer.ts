// Training a latent mapper for a server (the toolkit's `train-mapper --progress-jsonl`), supervised like an
// optimization (toolkit-process.ts). It writes into the server's mapper folder (src/engine/overlay.ts); the
// toolkit writes the graph, then `mappers.json` last and atomically, so nothing half-written is ever served.
// A stop (cancel, shutdown) leaves a checkpoint; a rerun with `resume` continues from it bit-exactly. A run
// without `resume` starts over (the toolkit drops an old checkpoint). Previews: one sample face before → after
// the mapper, every 2 minutes and at the end.
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { failureOf, startToolkit, toolkitRun, type ToolkitFailure, type StopReason, type ToolkitRun } from './toolkit-process.ts';

export interface TrainRequest {
  packDir: string;
  prompt: string;
  steps: number;
  /** W+ levels the mapper edits (default all). */
  levels?: { coarse: boolean; medium: boolean; fine: boolean };
  /** The server's mapper folder (created when missing). */
  outDir: string;
  /** Continue from the folder's checkpoint for this prompt when it has one (a rerun after a worker died). */
  resume: boolean;
  device: 'cpu' | 'cuda';
  /** Steps between checkpoints (default about every 5% of the run, at least 1). */
  checkpointEvery?: number;
  seed?: number;
  /** ArcFace ID loss weight (the toolkit's default: the official 0.1). */
  idLambda?: number;
  /** Largest side of each half of the preview (px); previews (every 2 min, the toolkit's default) only when set. */
  previewSize?: number;
}

export interface TrainStep {
  step: number;
  steps: number;
  loss: number;
  clip: number;
  /** The sample face before → after the mapper as it is now (PNG), when one was made with this step. */
  preview?: Buffer;
}

export interface TrainSummary {
  name: string;
  slug: string;
  steps: number;
  /** The step a resumed run continued from (0: from the start). */
  resumedAt: number;
  loss: number;
  clip: number;
  seconds: number;
  stepsPerS: number | null;
  device: string;
  /** The last preview (PNG), when previews were asked for. */
  preview?: Buffer;
}

export type TrainOutcome =
  | ({ kind: 'done' } & TrainSummary)
  | { kind: 'stopped'; reason: StopReason; step: number; checkpoint?: string }
  | ToolkitFailure;

export interface TrainHooks {
  /** `step`: steps already done (the checkpoint's, when resumed). */
  onStart?(info: { step: number; steps: number; resumed: boolean }): void;
  onStep?(step: TrainStep): void;
  onCheckpoint?(info: { step: number }): void;
  env?: NodeJS.ProcessEnv;
  graceMs?: number;
}

export type TrainRun = ToolkitRun<TrainOutcome>;

export function startMapperTraining(req: TrainRequest, hooks: TrainHooks = {}): TrainRun {
  const every = req.checkpointEvery ?? Math.max(1, Math.ceil(req.steps / 20));
  let dir = '';
  const prepared = (async () => {
    const args = [
      'train-mapper', '--pack', req.packDir, '--prompt', req.prompt, '--steps', String(req.steps),
      '--device', req.device, '--progress-jsonl', '--log-every', String(Math.max(1, Math.ceil(req.steps / 50))),
      '--checkpoint-every', String(every), '--seed', String(req.seed ?? 0), '--out', req.outDir,
    ];
    if (req.idLambda !== undefined) args.push('--id-lambda', String(req.idLambda));
    if (req.levels && !req.levels.coarse) args.push('--no-coarse');
    if (req.levels && !req.levels.medium) args.push('--no-medium');
    if (req.levels && !req.levels.fine) args.push('--no-fine');
    if (req.resume) args.push('--resume');
    if (req.previewSize) {
      dir = await fs.mkdtemp(path.join(os.tmpdir(), 'styleclip-train-'));
      args.push('--preview', path.join(dir, 'preview.png'), '--preview-size', String(req.previewSize));
    }
    return args;
  })();
  let lastStep = 0;
  let resumedAt = 0;
  let device: string = req.device;
  let done: Record<string, unknown> | null = null;
  let cancelled: Record<string, unknown> | null = null;
  const reads: Promise<unknown>[] = [];
  // Read at once: the next preview replaces the file.
  const readPreview = (event: Record<string, unknown>) =>
    typeof event.preview === 'string' ? fs.readFile(event.preview).catch(() => undefined) : Promise.resolve(undefined);
  let finalPreview: Promise<Buffer | undefined> = Promise.resolve(undefined);
  const proc = startToolkit(prepared, {
    env: hooks.env,
    graceMs: hooks.graceMs ?? 10_000, // a checkpoint is written on SIGTERM: give it time
    onEvent(event) {
      if (event.event === 'start') {
        lastStep = resumedAt = Number(event.step ?? 0); // steps already done (a resumed run starts past 0)
        device = String(event.device ?? req.device);
        hooks.onStart?.({ step: lastStep, steps: Number(event.steps ?? req.steps), resumed: event.resumed === true });
      } else if (event.event === 'step') {
        lastStep = Number(event.step);
        const step: TrainStep = { step: lastStep, steps: Number(event.steps), loss: Number(event.loss), clip: Number(event.clip) };
        reads.push(readPreview(event).then((preview) => hooks.onStep?.({ ...step, ...(preview ? { preview } : {}) })));
      } else if (event.event === 'checkpoint') {
        hooks.onCheckpoint?.({ step: Number(event.step) });
      } else if (event.event === 'done') {
        done = event;
        finalPreview = readPreview(event);
      } else if (event.event === 'cancelled') {
        cancelled = event;
      }
    },
  });
  return toolkitRun(
    proc,
    async (end): Promise<TrainOutcome> => {
      await Promise.all(reads);
      if (end.kind === 'stopped') return { kind: 'stopped', reason: end.reason, step: 0 };
      if (end.stopped) {
        const c = cancelled as Record<string, unknown> | null;
        return { kind: 'stopped', reason: end.stopped, step: c ? Number(c.step) : lastStep, ...(typeof c?.checkpoint === 'string' ? { checkpoint: c.checkpoint } : {}) };
      }
      if (end.code === 0 && done) {
        const d = done as Record<string, unknown>;
        const preview = await finalPreview;
        return {
          kind: 'done',
          name: String(d.name ?? req.prompt),
          slug: String(d.slug ?? ''),
          steps: Number(d.steps),
          resumedAt,
          loss: Number(d.loss),
          clip: Number(d.clip),
          seconds: Number(d.seconds),
          stepsPerS: typeof d.stepsPerS === 'number' ? d.stepsPerS : null,
          device,
          ...(preview ? { preview } : {}),
        };
      }
      return failureOf('training', end);
    },
    () => dir,
  );
}
