// An EditExecutor whose engine lives in a worker_threads Worker (embedded mode and the worker process).
// If the thread dies (engine crash, out of memory), its jobs fail as transient faults (so they are retried)
// and the next call starts a fresh thread.
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import type { EditExecutor, ExecItem, ExecOutcome } from './executor.ts';

export const DEFAULT_ENGINE_MODULE = fileURLToPath(new URL('../engine/index.ts', import.meta.url));

interface Reply {
  id: number;
  ok: boolean;
  value?: unknown;
  error?: { name: string; message: string; code?: string };
}

interface Thread {
  worker: Worker;
  ready: Promise<void>;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
  dead: boolean;
}

export function createThreadExecutor(options: { engineModule?: string; device?: string } = {}): EditExecutor {
  let thread: Thread | null = null;
  let nextId = 1;
  let closed = false;

  function start(): Thread {
    const worker = new Worker(new URL('./thread-entry.mjs', import.meta.url), {
      workerData: { engineModule: options.engineModule ?? DEFAULT_ENGINE_MODULE, device: options.device },
    });
    const t: Thread = { worker, pending: new Map(), dead: false, ready: Promise.resolve() };
    t.ready = new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`engine thread exited during start (code ${code})`)));
    });
    t.ready.catch(() => {});
    worker.on('message', (msg: Reply) => {
      const p = t.pending.get(msg.id);
      if (!p) return;
      t.pending.delete(msg.id);
      if (msg.ok) p.resolve(msg.value);
      else p.reject(Object.assign(new Error(msg.error!.message), { name: msg.error!.name, code: msg.error!.code }));
    });
    const fail = (err: Error) => {
      t.dead = true;
      for (const p of t.pending.values()) p.reject(err);
      t.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`engine thread exited (code ${code})`)));
    return t;
  }

  async function call(msg: Record<string, unknown>): Promise<unknown> {
    if (closed) throw new Error('executor is closed');
    if (!thread || thread.dead) {
      thread = start();
    }
    const t = thread;
    await t.ready;
    if (t.dead) throw new Error('engine thread died');
    const id = nextId++;
    return new Promise((resolve, reject) => {
      t.pending.set(id, { resolve, reject });
      t.worker.postMessage({ ...msg, id });
    });
  }

  return {
    run: (items: ExecItem[]) => call({ kind: 'run', items }) as Promise<ExecOutcome[]>,
    async warm(packDir: string) {
      await call({ kind: 'warm', packDir });
    },
    async close() {
      if (!thread) return;
      if (!thread.dead) await call({ kind: 'close' }).catch(() => {});
      closed = true;
      await thread.worker.terminate();
    },
  };
}
