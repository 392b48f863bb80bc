// Latent optimization for the worker: a PyTorch process (the toolkit's `optimize --progress-jsonl`) per job,
// supervised from Node. The worker stays the only queue consumer, so the job keeps every queue semantic; this
// file only starts the process, reads its JSON lines, and stops it (SIGTERM, then SIGKILL) on cancel, on the
// time budget or at shutdown. PyTorch is looked for once per process (`probeTorch`).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatNpy, parseNpy } from '../engine/npy.ts';
import type { OptimizeInfo } from '../jobs/types.ts';

/** Whether a worker takes optimize jobs (STYLECLIP_OPTIMIZE): auto = when PyTorch is found, on = required, off = never. */
export type OptimizeMode = 'auto' | 'on' | 'off';

export const TOOLKIT_SCRIPT = fileURLToPath(new URL('../../scripts/toolkit.sh', import.meta.url));

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

export type StopReason = 'cancelled' | 'budget' | 'shutdown';

export type OptimizeOutcome =
  | { kind: 'done'; wplus: Float32Array; png: Buffer; summary: OptimizeSummary }
  | { kind: 'stopped'; reason: StopReason; step: number }
  /** The toolkit refused the request (exit 1, one line on stderr): retrying will not help. */
  | { kind: 'refused'; message: string }
  /** Anything else (crash, killed, out of memory): a transient fault. */
  | { kind: 'crashed'; message: string };

export interface OptimizeRun {
  outcome: Promise<OptimizeOutcome>;
  /** SIGTERM (the toolkit then reports `cancelled` and exits 130), SIGKILL if it is still there after `graceMs`. */
  stop(reason: StopReason): void;
  readonly pid: number | undefined;
}

export interface OptimizeHooks {
  onStart?(info: { resolution: number; device: string }): void;
  onStep?(step: OptimizeStep): void;
  env?: NodeJS.ProcessEnv;
  /** How long a stopped process may take before SIGKILL (default 2000 ms). */
  graceMs?: number;
}

/** Steps between progress reports: about 20 reports a run. */
export const reportEvery = (steps: number) => Math.max(1, Math.ceil(steps / 20));

const live = new Set<ChildProcess>();
let exitHook = false;

/** Starts one optimization. The work folder (latent in, result out, previews) is removed when it ends. */
export function startOptimization(req: OptimizeRequest, hooks: OptimizeHooks = {}): OptimizeRun {
  let child: ChildProcess | undefined;
  let stopped: StopReason | null = null;
  let killTimer: NodeJS.Timeout | undefined;
  const stop = (reason: StopReason) => {
    if (stopped) return;
    stopped = reason;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    killTimer = setTimeout(() => child?.kill('SIGKILL'), hooks.graceMs ?? 2000);
    killTimer.unref();
  };

  const outcome = (async (): Promise<OptimizeOutcome> => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'styleclip-optimize-'));
    try {
      const args = [
        TOOLKIT_SCRIPT, '-m', 'styleclip_toolkit', 'optimize',
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
      if (stopped) return { kind: 'stopped', reason: stopped, step: 0 };
      child = spawn('bash', args, { env: hooks.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
      live.add(child);
      if (!exitHook) {
        exitHook = true;
        // A worker that exits (shutdown past its grace, a crash) takes its optimizations with it.
        process.once('exit', () => live.forEach((c) => c.kill('SIGKILL')));
      }
      return await supervise(child, dir, req, hooks, () => stopped);
    } finally {
      if (killTimer) clearTimeout(killTimer);
      if (child) live.delete(child);
      await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
    }
  })();
  return {
    outcome,
    stop,
    get pid() {
      return child?.pid;
    },
  };
}

async function supervise(
  child: ChildProcess,
  dir: string,
  req: OptimizeRequest,
  hooks: OptimizeHooks,
  stopped: () => StopReason | null,
): Promise<OptimizeOutcome> {
  let stderr = '';
  let buffered = '';
  let lastStep = 0;
  let done: Record<string, unknown> | null = null;
  let started: { resolution: number; device: string } | null = null;
  const reads: Promise<void>[] = [];
  child.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  child.stdout!.on('data', (d: Buffer) => {
    buffered += d.toString('utf8');
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl).trim();
      buffered = buffered.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      let event: Record<string, unknown>;
      try {
        event = JSON.parse(line) as Record<string, unknown>;
      } catch {
        continue;
      }
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
      } else if (event.event === 'cancelled' && stopped()) {
        // The loop has stopped and wrote nothing: no need to wait for PyTorch's slow interpreter teardown.
        child.kill('SIGKILL');
      }
    }
  });
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
    child.once('error', () => resolve([null, null]));
    child.once('close', (c, s) => resolve([c, s]));
  });
  await Promise.all(reads);
  const reason = stopped();
  if (reason) return { kind: 'stopped', reason, step: lastStep };
  const lastLine = stderr.trim().split('\n').pop() ?? '';
  if (code === 0 && done) {
    const d = done as Record<string, number>;
    const npy = parseNpy(await fs.readFile(path.join(dir, 'w.npy')), 'optimized latent');
    const png = await fs.readFile(path.join(dir, 'result.png'));
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
        device: (started as { device: string } | null)?.device ?? req.device,
        resolution: (started as { resolution: number } | null)?.resolution ?? 0,
      },
    };
  }
  if (code === 1 && lastLine && !/Traceback|Error:/.test(stderr.slice(0, stderr.lastIndexOf(lastLine)))) {
    return { kind: 'refused', message: lastLine.replace(/^(styleclip[-_ ]toolkit:?|error:)\s*/i, '') };
  }
  const how = signal ? `killed by ${signal}` : `exit ${code}`;
  return { kind: 'crashed', message: `the optimization process ended (${how})${lastLine ? `: ${lastLine}` : ''}` };
}
