// One supervised toolkit process (scripts/toolkit.sh -m styleclip_toolkit …) with `--progress-jsonl`: the
// common part of every gradient job (optimize, train-mapper). It starts the process, hands each JSON line to
// the caller, stops it (SIGTERM: the toolkit checkpoints/reports `cancelled` and exits 130; SIGKILL after the
// grace), kills what is still running when the worker exits, and tells a refusal (exit 1, one line on stderr)
// from a crash.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export const TOOLKIT_SCRIPT = fileURLToPath(new URL('../../scripts/toolkit.sh', import.meta.url));

export type StopReason = 'cancelled' | 'budget' | 'shutdown';

export type ToolkitEnd =
  | { kind: 'exited'; code: number | null; signal: NodeJS.Signals | null; stderr: string; stopped: StopReason | null }
  | { kind: 'stopped'; reason: StopReason };

export interface ToolkitHooks {
  /** Each JSON line the toolkit prints; returning 'kill' ends the process at once (it has nothing left to write). */
  onEvent?(event: Record<string, unknown>): void | 'kill';
  env?: NodeJS.ProcessEnv;
  /** How long a stopped process may take before SIGKILL (default 2000 ms). */
  graceMs?: number;
}

export interface ToolkitProcess {
  /** Resolves when the process has closed (or `stopped` when it was stopped before it started). */
  ended: Promise<ToolkitEnd>;
  stop(reason: StopReason): void;
  readonly stopped: StopReason | null;
  readonly pid: number | undefined;
}

const live = new Set<ChildProcess>();
let exitHook = false;

/** Starts `toolkit.sh -m styleclip_toolkit <args>`; args may wait on inputs being written (stop() before then cancels the start). */
export function startToolkit(args: string[] | Promise<string[]>, hooks: ToolkitHooks = {}): ToolkitProcess {
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
  const ended = (async (): Promise<ToolkitEnd> => {
    const argv = await args;
    if (stopped) return { kind: 'stopped', reason: stopped };
    child = spawn('bash', [TOOLKIT_SCRIPT, '-m', 'styleclip_toolkit', ...argv], { env: hooks.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(child);
    if (!exitHook) {
      exitHook = true;
      // A worker that exits (shutdown past its grace, a crash) takes its toolkit processes with it.
      process.once('exit', () => live.forEach((c) => c.kill('SIGKILL')));
    }
    try {
      const c = child;
      let stderr = '';
      let buffered = '';
      c.stderr!.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
      c.stdout!.on('data', (d: Buffer) => {
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
          if (hooks.onEvent?.(event) === 'kill') c.kill('SIGKILL');
        }
      });
      const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
        c.once('error', () => resolve([null, null]));
        c.once('close', (cd, s) => resolve([cd, s]));
      });
      return { kind: 'exited', code, signal, stderr, stopped };
    } finally {
      if (killTimer) clearTimeout(killTimer);
      live.delete(child);
    }
  })();
  return {
    ended,
    stop,
    get stopped() {
      return stopped;
    },
    get pid() {
      return child?.pid;
    },
  };
}

/** A started toolkit job: what it comes to, and how to stop it. */
export interface ToolkitRun<T> {
  outcome: Promise<T>;
  /** SIGTERM (the toolkit then reports `cancelled` and exits 130), SIGKILL if it is still there after the grace. */
  stop(reason: StopReason): void;
  readonly pid: number | undefined;
}

/**
 * The run of `proc`: `read` turns its end into the outcome, then the work folder `workDir()` names (if any) is
 * removed, whatever happened.
 */
export function toolkitRun<T>(proc: ToolkitProcess, read: (end: ToolkitEnd) => Promise<T>, workDir: () => string): ToolkitRun<T> {
  const outcome = (async () => {
    try {
      return await read(await proc.ended);
    } finally {
      const dir = workDir();
      if (dir) await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
    }
  })();
  return {
    outcome,
    stop: (reason) => proc.stop(reason),
    get pid() {
      return proc.pid;
    },
  };
}

/** What a process that exited without its result means: a refusal (retrying will not help) or a crash (it may). */
export type ToolkitFailure = { kind: 'refused'; message: string } | { kind: 'crashed'; message: string };

export function failureOf(what: string, end: Extract<ToolkitEnd, { kind: 'exited' }>): ToolkitFailure {
  const refusal = refusalOf(end.code, end.stderr);
  return refusal ? { kind: 'refused', message: refusal } : { kind: 'crashed', message: crashMessage(what, end.code, end.signal, end.stderr) };
}

/** A toolkit refusal (exit 1, its one line last on stderr, no traceback before it): the message, else undefined. */
function refusalOf(code: number | null, stderr: string): string | undefined {
  const lastLine = stderr.trim().split('\n').pop() ?? '';
  if (code === 1 && lastLine && !/Traceback|Error:/.test(stderr.slice(0, stderr.lastIndexOf(lastLine)))) {
    return lastLine.replace(/^(styleclip[-_ ]toolkit:?|error:)\s*/i, '');
  }
  return undefined;
}

/** How a crash reads: "the <what> process ended (exit 2): <last stderr line>". */
function crashMessage(what: string, code: number | null, signal: NodeJS.Signals | null, stderr: string): string {
  const lastLine = stderr.trim().split('\n').pop() ?? '';
  const how = signal ? `killed by ${signal}` : `exit ${code}`;
  return `the ${what} process ended (${how})${lastLine ? `: ${lastLine}` : ''}`;
}
