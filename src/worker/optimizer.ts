// Latent optimization for the worker: a PyTorch process (the toolkit's `optimize --progress-jsonl`) per job,
// supervised from Node. The worker stays the only queue consumer, so the job keeps every queue semantic; this
// file only starts the process, reads its JSON lines, and stops it (SIGTERM, then SIGKILL) on cancel, on the
// time budget or at shutdown. PyTorch is looked for once per process (`probeTorch`).
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { formatNpy, parseNpy } from '../engine/npy.ts';
import type { OptimizeInfo } from '../jobs/types.ts';
import { failureOf, startToolkit, toolkitRun, type ToolkitFailure, TOOLKIT_SCRIPT, type StopReason, type ToolkitProcess, type ToolkitRun } from './toolkit-process.ts';

/** Whether a worker takes optimize jobs (STYLECLIP_OPTIMIZE): auto = when PyTorch is found, on = required, off = never. */
export type OptimizeMode = 'auto' | 'on' | 'off';

export { TOOLKIT_SCRIPT, type StopReason } from './toolkit-process.ts';

export type TorchProbe = { ok: true; python: string; torch: string; cuda: boolean } | { ok: false; reason: string };

let probed: Promise<TorchProbe> | null = null;

/**
 * Whether the toolkit's interpreter (scripts/toolkit.sh: STYLECLIP_PYTHON, else a python3 with torch and onnx)
 * can run here. Once per process: the answer does not change while it runs.
 */
export function probeTorch(env: NodeJS.ProcessEnv = process.env): Promise<TorchProbe> {
  return (probed ??= runProbe(env));
}

function runProbe(env: NodeJS.ProcessEnv): Promise<TorchProbe> {
  const code = 'import sys, torch, json; print(json.dumps([sys.executable, torch.__version__, torch.cuda.is_available()]))';
  return new Promise((resolve) => {
    const child = spawn('bash', [TOOLKIT_SCRIPT, '-c', code], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', (e) => {
      clearTimeout(timer);
      resolve({ ok: false, reason: e.message });
    });
    child.on('close', (status) => {
      clearTimeout(timer);
      try {
        if (status !== 0) throw new Error();
        const [python, torch, cuda] = JSON.parse(out.trim().split('\n').pop()!) as [string, string, boolean];
        resolve({ ok: true, python, torch, cuda });
      } catch {
        const line = err.trim().split('\n').pop() || `exit ${status}`;
        resolve({ ok: false, reason: line });
      }
    });
  });
}

export interface OptimizeRequest {
  packDir: string;
  prompt: string;
  /**
   * Start from this seed's face… Served jobs pass no truncation (ψ 1): seed N is then the same face as in every
   * other method's job (the engine samples with ψ 1); the toolkit's own default is the official 0.7.
   */
  seed?: number;
  /** ψ for a seed start (default 1, see `seed`). */
  truncation?: number;
  /** …or from this W+ (numWs rows of wDim, float32). */
  latent?: { data: Float32Array; numWs: number; wDim: number };
  steps: number;
  l2Lambda: number;
  idLambda: number;
  device: 'cpu' | 'cuda';
  /** Largest preview side (px). */
  previewSize?: number;
}

export interface OptimizeStep {
  step: number;
  steps: number;
  loss: number;
  clip: number;
  /** The current image, at most previewSize px, PNG. */
  preview?: Buffer;
}

/** The run's numbers: those of the caption (OptimizeInfo), and the image size. */
export type OptimizeSummary = Omit<OptimizeInfo, 'method' | 'l2Lambda' | 'idLambda'> & { resolution: number };


export type OptimizeOutcome =
  | { kind: 'done'; wplus: Float32Array; png: Buffer; summary: OptimizeSummary }
  | { kind: 'stopped'; reason: StopReason; step: number }
  /** Refused (exit 1, one line on stderr: retrying will not help), or crashed, killed, out of memory (transient). */
  | ToolkitFailure;

export type OptimizeRun = ToolkitRun<OptimizeOutcome>;

export interface OptimizeHooks {
  onStart?(info: { resolution: number; device: string }): void;
  onStep?(step: OptimizeStep): void;
  env?: NodeJS.ProcessEnv;
  /** How long a stopped process may take before SIGKILL (default 2000 ms). */
  graceMs?: number;
}

/** Steps between progress reports: about 20 reports a run. */
export const reportEvery = (steps: number) => Math.max(1, Math.ceil(steps / 20));

/** Starts one optimization. The work folder (latent in, result out, previews) is removed when it ends. */
export function startOptimization(req: OptimizeRequest, hooks: OptimizeHooks = {}): OptimizeRun {
  let dir = '';
  const prepared = (async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'styleclip-optimize-'));
    const args = [
      'optimize',
      '--pack', req.packDir, '--prompt', req.prompt,
      '--steps', String(req.steps), '--l2-lambda', String(req.l2Lambda), '--id-lambda', String(req.idLambda),
      '--device', req.device, '--progress-jsonl', '--log-every', String(reportEvery(req.steps)),
      '--out', path.join(dir, 'w.npy'), '--image', path.join(dir, 'result.png'),
      '--preview', path.join(dir, 'preview.png'), '--preview-size', String(req.previewSize ?? 128),
    ];
    if (req.latent) {
      const { data, numWs, wDim } = req.latent;
      await fs.writeFile(path.join(dir, 'start.npy'), formatNpy([1, numWs, wDim], data));
      args.push('--latent', path.join(dir, 'start.npy'));
    } else {
      args.push('--seed', String(req.seed ?? 0), '--truncation', String(req.truncation ?? 1));
    }
    return args;
  })();
  let lastStep = 0;
  let done: Record<string, unknown> | null = null;
  let started: { resolution: number; device: string } | null = null;
  const reads: Promise<void>[] = [];
  let proc: ToolkitProcess;
  const onEvent = (event: Record<string, unknown>): void | 'kill' => {
    if (event.event === 'start') {
      started = { resolution: Number(event.resolution), device: String(event.device) };
      hooks.onStart?.(started);
    } else if (event.event === 'step') {
      lastStep = Number(event.step);
      const step: OptimizeStep = { step: lastStep, steps: Number(event.steps), loss: Number(event.loss), clip: Number(event.clip) };
      // Read now: the next step replaces the file.
      const read = (typeof event.preview === 'string' ? fs.readFile(event.preview).catch(() => undefined) : Promise.resolve(undefined)).then(
        (preview) => hooks.onStep?.({ ...step, ...(preview ? { preview } : {}) }),
      );
      reads.push(read);
    } else if (event.event === 'done') {
      done = event;
    } else if (event.event === 'cancelled' && proc.stopped) {
      // The loop has stopped and wrote nothing: no need to wait for PyTorch's slow interpreter teardown.
      return 'kill';
    }
  };
  // The arguments are only known once the work folder exists: the process starts after `prepared`.
  proc = startToolkit(prepared, { onEvent, env: hooks.env, graceMs: hooks.graceMs });
  return toolkitRun(
    proc,
    async (end): Promise<OptimizeOutcome> => {
      await Promise.all(reads);
      if (end.kind === 'stopped') return { kind: 'stopped', reason: end.reason, step: 0 };
      if (end.stopped) return { kind: 'stopped', reason: end.stopped, step: lastStep };
      if (end.code === 0 && done) {
        const d = done as Record<string, number>;
        const npy = parseNpy(await fs.readFile(path.join(dir, 'w.npy')), 'optimized latent');
        const png = await fs.readFile(path.join(dir, 'result.png'));
        const s = started as { resolution: number; device: string } | null;
        return {
          kind: 'done',
          wplus: npy.data as Float32Array,
          png,
          summary: {
            steps: d.steps,
            loss: d.loss,
            clip: d.clip,
            l2: d.l2,
            id: d.id,
            seconds: d.seconds,
            stepsPerS: d.stepsPerS,
            device: s?.device ?? req.device,
            resolution: s?.resolution ?? 0,
          },
        };
      }
      return failureOf('optimization', end);
    },
    () => dir,
  );
}
