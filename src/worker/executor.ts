// Runs a batch of edits on an engine: sample (seeds) → edit → one synthesis call → PNG.
// Used directly by the benchmark and inside the worker thread (thread.ts).
import type { Engine, EditInfo, EditSpec, LatentState } from '../engine/types.ts';
import { encodeImage } from '../engine/image.ts';

export interface ExecItem {
  packDir: string;
  spec: EditSpec;
  /** Start from this seed's face… */
  seed?: number;
  /** …or from a stored result. */
  source?: LatentState;
}

export type ExecOutcome =
  | {
      ok: true;
      png: Uint8Array;
      state: LatentState;
      info: EditInfo;
      resolution: number;
      untrained: boolean;
      styleChannels: number;
      engineMs: number;
      encodeMs: number;
      batchSize: number;
    }
  | { ok: false; code: string; message: string; permanent: boolean };

export interface EditExecutor {
  /** Items share a pack; outcomes come back in the same order. */
  run(items: ExecItem[]): Promise<ExecOutcome[]>;
  /** Opens a pack ahead of the first job (health checks wait for it). */
  warm(packDir: string): Promise<void>;
  close(): Promise<void>;
}

export type OpenPack = (dir: string, opts: { device?: string }) => Promise<Engine>;

function failure(err: unknown): ExecOutcome {
  const e = err as { name?: string; code?: string; message?: string };
  // EngineErrors are about the request (bad prompt, no channel left…): retrying will not help.
  const permanent = e?.name === 'EngineError';
  return { ok: false, code: permanent ? (e.code ?? 'engine') : 'internal', message: e?.message ?? String(err), permanent };
}

export function createEngineExecutor(openPack: OpenPack, device?: string): EditExecutor {
  const engines = new Map<string, Promise<Engine>>();
  const open = (dir: string) => {
    let engine = engines.get(dir);
    if (!engine) {
      engine = openPack(dir, { device });
      engine.catch(() => engines.delete(dir));
      engines.set(dir, engine);
    }
    return engine;
  };

  async function editAll(engine: Engine, states: LatentState[], specs: EditSpec[]) {
    try {
      return await engine.edit(states, specs);
    } catch {
      // One bad item must not sink the batch: redo one by one to find it.
      return Promise.all(
        states.map((s, i) =>
          engine.edit([s], [specs[i]]).then(
            ([r]) => r,
            (err) => err as Error,
          ),
        ),
      );
    }
  }

  return {
    async warm(dir) {
      await open(dir);
    },

    async run(items) {
      if (!items.length) return [];
      let engine: Engine;
      try {
        engine = await open(items[0].packDir);
      } catch (err) {
        return items.map(() => failure(err));
      }
      const started = performance.now();
      const outcomes: ExecOutcome[] = new Array(items.length);
      try {
        const seeded = items.map((it, i) => ({ it, i })).filter(({ it }) => !it.source);
        const sampled = seeded.length ? await engine.sample(seeded.map(({ it }) => it.seed ?? 0)) : [];
        const states = items.map((it) => it.source!);
        seeded.forEach(({ i }, k) => (states[i] = sampled[k]));
        const edited = await editAll(engine, states, items.map((it) => it.spec));
        const good: number[] = [];
        edited.forEach((r, i) => {
          if (r instanceof Error) outcomes[i] = failure(r);
          else good.push(i);
        });
        const images = good.length ? await engine.render(good.map((i) => (edited[i] as { state: LatentState }).state)) : [];
        const engineMs = performance.now() - started;
        await Promise.all(
          good.map(async (i, k) => {
            const t = performance.now();
            const png = await encodeImage(images[k].raw, images[k].resolution, 'png');
            const r = edited[i] as { state: LatentState; info: EditInfo };
            outcomes[i] = {
              ok: true,
              png,
              state: r.state,
              info: r.info,
              resolution: images[k].resolution,
              untrained: engine.summary.untrained,
              styleChannels: engine.summary.styleChannels,
              engineMs,
              encodeMs: performance.now() - t,
              batchSize: items.length,
            };
          }),
        );
      } catch (err) {
        return items.map(() => failure(err));
      }
      return outcomes;
    },

    async close() {
      const all = [...engines.values()];
      engines.clear();
      await Promise.allSettled(all.map(async (e) => (await e).close()));
    },
  };
}
