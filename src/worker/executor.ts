// Runs a batch of edits on an engine: sample (seeds) → edit → one synthesis call → PNG.
// Used directly by the benchmark and inside the worker thread (thread.ts).
import type { Engine, EditInfo, EditSpec, LatentState } from '../engine/types.ts';
import { encodeImage } from '../engine/image.ts';
import { closePipeline, finishPhoto, pipelineFor, preparePhoto, type PhotoInput, type PhotoOutput, type PreparedPhoto } from './photo.ts';

export interface ExecItem {
  packDir: string;
  spec: EditSpec;
  /** Start from this seed's face… */
  seed?: number;
  /** …or from a stored result. */
  source?: LatentState;
  /**
   * A user's photo: without `source`, the edit starts from its inversion (run here unless stored); either
   * way the rendered face is pasted back into it (ExecOutcome.png) and `photo` carries the before → after.
   */
  photo?: PhotoInput;
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
      photo?: PhotoOutput;
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
        // Photos first (decode, detect, align, encode), each on its own: a photo without a face fails alone.
        const photoOf: (PreparedPhoto | undefined)[] = new Array(items.length);
        if (items.some((it) => it.photo)) {
          const pipeline = await pipelineFor(engine, device);
          for (const [i, it] of items.entries()) {
            if (!it.photo) continue;
            try {
              photoOf[i] = await preparePhoto(pipeline, it.photo);
            } catch (err) {
              outcomes[i] = failure(err);
            }
          }
        }
        const live = items.map((_, i) => i).filter((i) => !outcomes[i]);
        const seeded = live.filter((i) => !items[i].source && !photoOf[i]);
        const sampled = seeded.length ? await engine.sample(seeded.map((i) => items[i].seed ?? 0)) : [];
        const states: LatentState[] = live.map((i) => items[i].source ?? photoOf[i]?.state ?? sampled[seeded.indexOf(i)]);
        const edited = await editAll(engine, states, live.map((i) => items[i].spec));
        const good: number[] = [];
        const editedOf = new Map<number, { state: LatentState; info: EditInfo }>();
        edited.forEach((r, k) => {
          if (r instanceof Error) outcomes[live[k]] = failure(r);
          else {
            good.push(live[k]);
            editedOf.set(live[k], r);
          }
        });
        const images = good.length ? await engine.render(good.map((i) => editedOf.get(i)!.state)) : [];
        const engineMs = performance.now() - started;
        await Promise.all(
          good.map(async (i, k) => {
            const t = performance.now();
            const prepared = photoOf[i];
            const { png, photo } = prepared
              ? await finishPhoto(await pipelineFor(engine, device), prepared, images[k])
              : { png: await encodeImage(images[k].raw, images[k].resolution, 'png'), photo: undefined };
            const r = editedOf.get(i)!;
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
              ...(photo ? { photo } : {}),
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
      await Promise.allSettled(all.map(async (e) => Promise.all([closePipeline(await e), (await e).close()])));
    },
  };
}
