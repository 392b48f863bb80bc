// Micro-batching: jobs for the same pack that arrive within a short window (or while the engine is busy)
// share one synthesis call, up to `maxBatch`.
import type { EditExecutor, ExecItem, ExecOutcome } from './executor.ts';

interface Waiter {
  item: ExecItem;
  resolve: (o: ExecOutcome) => void;
}

export interface BatchStats {
  batches: number;
  items: number;
}

/**
 * WORKER_BATCH_SIZE's default. Measured (docs/benchmarks.md): on a CPU a batch of 8 at 1024² costs more
 * than 8 single images (onnxruntime already spreads one image over every core), so batching only slows
 * real packs there; on a GPU a batch fills the device (TF32 at 1024²: 160 images/s in 8s, 111 singly).
 */
export function defaultBatchSize(device: string): number {
  return device === 'cuda' ? 8 : 1;
}

export class Batcher {
  private readonly pending = new Map<string, Waiter[]>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private busy = false;
  readonly stats: BatchStats = { batches: 0, items: 0 };

  constructor(
    private readonly executor: EditExecutor,
    private readonly maxBatch: number,
    private readonly windowMs: number,
    /** Once per batch, after it ran (before its items resolve). */
    private readonly onBatch: (size: number, outcomes: ExecOutcome[]) => void = () => {},
  ) {}

  submit(item: ExecItem): Promise<ExecOutcome> {
    return new Promise((resolve) => {
      const list = this.pending.get(item.packDir) ?? [];
      list.push({ item, resolve });
      this.pending.set(item.packDir, list);
      if (list.length >= this.maxBatch) this.kick();
      else if (!this.timers.has(item.packDir)) {
        this.timers.set(item.packDir, setTimeout(() => this.kick(), this.windowMs));
      }
    });
  }

  /** Runs batches one at a time (one engine), packs in turn, until nothing is pending. */
  private async kick() {
    if (this.busy) return;
    this.busy = true;
    try {
      for (;;) {
        const next = this.pending.entries().next();
        if (next.done) break;
        const [packDir, list] = next.value;
        const batch = list.splice(0, this.maxBatch);
        // Round-robin: a pack with more waiting goes behind the others, so no pack starves.
        this.pending.delete(packDir);
        if (list.length) this.pending.set(packDir, list);
        else {
          clearTimeout(this.timers.get(packDir));
          this.timers.delete(packDir);
        }
        this.stats.batches += 1;
        this.stats.items += batch.length;
        let outcomes: ExecOutcome[];
        try {
          outcomes = await this.executor.run(batch.map((w) => w.item));
        } catch (err) {
          const message = (err as Error).message;
          outcomes = batch.map(() => ({ ok: false as const, code: 'internal', message, permanent: false }));
        }
        this.onBatch(batch.length, outcomes);
        batch.forEach((w, i) => w.resolve(outcomes[i]));
      }
    } finally {
      this.busy = false;
    }
  }
}
