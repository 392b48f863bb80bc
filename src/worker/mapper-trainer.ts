// Training a latent mapper for a server (the toolkit's `train-mapper --progress-jsonl`), supervised like an
// optimization (toolkit-process.ts). It writes into the server's mapper folder (src/engine/overlay.ts); the
// toolkit writes the graph, then `mappers.json` last and atomically, so nothing half-written is ever served.
// A stop (cancel, shutdown) leaves a checkpoint; a rerun with `resume` continues from it bit-exactly.
import { crashMessage, refusalOf, startToolkit, type StopReason } from './toolkit-process.ts';

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
}

export interface TrainStep {
  step: number;
  steps: number;
  loss: number;
  clip: number;
}

export type TrainOutcome =
  | { kind: 'done'; name: string; slug: string; steps: number; seconds: number }
  | { kind: 'stopped'; reason: StopReason; step: number; checkpoint?: string }
  | { kind: 'refused'; message: string }
  | { kind: 'crashed'; message: string };

export interface TrainHooks {
  /** `step`: steps already done (the checkpoint's, when resumed). */
  onStart?(info: { step: number; steps: number; resumed: boolean }): void;
  onStep?(step: TrainStep): void;
  onCheckpoint?(info: { step: number }): void;
  env?: NodeJS.ProcessEnv;
  graceMs?: number;
}

export interface TrainRun {
  outcome: Promise<TrainOutcome>;
  stop(reason: StopReason): void;
  readonly pid: number | undefined;
}

export function startMapperTraining(req: TrainRequest, hooks: TrainHooks = {}): TrainRun {
  const every = req.checkpointEvery ?? Math.max(1, Math.ceil(req.steps / 20));
  const args = [
    'train-mapper', '--pack', req.packDir, '--prompt', req.prompt, '--steps', String(req.steps),
    '--device', req.device, '--progress-jsonl', '--log-every', String(Math.max(1, Math.ceil(req.steps / 50))),
    '--checkpoint-every', String(every), '--seed', String(req.seed ?? 0), '--out', req.outDir,
  ];
  if (req.levels && !req.levels.coarse) args.push('--no-coarse');
  if (req.levels && !req.levels.medium) args.push('--no-medium');
  if (req.levels && !req.levels.fine) args.push('--no-fine');
  if (req.resume) args.push('--resume');
  let lastStep = 0;
  let done: Record<string, unknown> | null = null;
  let cancelled: Record<string, unknown> | null = null;
  const proc = startToolkit(args, {
    env: hooks.env,
    graceMs: hooks.graceMs ?? 10_000, // a checkpoint is written on SIGTERM: give it time
    onEvent(event) {
      if (event.event === 'start') {
        lastStep = Number(event.step ?? 0); // steps already done (a resumed run starts past 0)
        hooks.onStart?.({ step: lastStep, steps: Number(event.steps ?? req.steps), resumed: event.resumed === true });
      } else if (event.event === 'step') {
        lastStep = Number(event.step);
        hooks.onStep?.({ step: lastStep, steps: Number(event.steps), loss: Number(event.loss), clip: Number(event.clip) });
      } else if (event.event === 'checkpoint') {
        hooks.onCheckpoint?.({ step: Number(event.step) });
      } else if (event.event === 'done') {
        done = event;
      } else if (event.event === 'cancelled') {
        cancelled = event;
      }
    },
  });
  const outcome = (async (): Promise<TrainOutcome> => {
    const end = await proc.ended;
    if (end.kind === 'stopped') return { kind: 'stopped', reason: end.reason, step: 0 };
    if (end.stopped) {
      const c = cancelled as Record<string, unknown> | null;
      return { kind: 'stopped', reason: end.stopped, step: c ? Number(c.step) : lastStep, ...(typeof c?.checkpoint === 'string' ? { checkpoint: c.checkpoint } : {}) };
    }
    if (end.code === 0 && done) {
      const d = done as Record<string, unknown>;
      return { kind: 'done', name: String(d.name ?? req.prompt), slug: String(d.slug ?? ''), steps: Number(d.steps), seconds: Number(d.seconds) };
    }
    const refusal = refusalOf(end.code, end.stderr);
    if (refusal) return { kind: 'refused', message: refusal };
    return { kind: 'crashed', message: crashMessage('training', end.code, end.signal, end.stderr) };
  })();
  return {
    outcome,
    stop: (reason) => proc.stop(reason),
    get pid() {
      return proc.pid;
    },
  };
}
