// The worker: takes jobs from the queue, resolves their source face, batches them through the executor,
// and stores results (image, edited latent, caption data) with a TTL. Safe to rerun: a job whose result
// is already stored is not computed again, so a job rerun after a crash gives the user exactly one result.
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { ActiveJob, JobQueue, ProcessorHandle } from '../jobs/queue.ts';
import { getJSON, setJSON, type Store } from '../state/store.ts';
import { keys } from '../state/keys.ts';
import { SettingsService } from '../state/settings.ts';
import { CANCELLED_MESSAGE, isOptimize, isTraining, PermanentJobError, PostponeJob, type ResultMeta } from '../jobs/types.ts';
import type { PackCatalog } from '../engine/catalog.ts';
import type { EditSpec, LatentState, PackSummary } from '../engine/types.ts';
import type { EditExecutor, ExecItem } from './executor.ts';
import { Batcher } from './batcher.ts';
import { dropUnusablePhoto, photoInput, storePhotoResult } from './photo-jobs.ts';
import { runningCapsCheck } from './running-caps.ts';
import { rideOutJob, ridingStore, type Ride } from './ride.ts';

export interface WorkerServiceOptions {
  queue: JobQueue;
  store: Store;
  packs: PackCatalog;
  executor: EditExecutor;
  batchSize: number;
  batchWindowMs: number;
  resultTtlS: number;
  /**
   * REDIS_OUTAGE_MS: how long a running job waits for Redis (its reads and result writes are retried) before
   * it is handed back to the queue. Either way no try is spent: an outage is not the job's fault.
   */
  outageMs: number;
  metrics: Metrics;
  log: Logger;
}

export interface WorkerService {
  /** Throughput since start. */
  stats(): { jobs: number; failed: number; batches: number; meanBatch: number; jobsPerS: number; jobsLastMinute: number };
  /** Ids of the jobs being handled now (what a forced shutdown abandons). */
  running(): string[];
  /** Stops taking jobs, finishes the running ones, closes the engine. */
  close(): Promise<void>;
}

const f32 = (buf: Buffer) => new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

async function loadSource(store: Store, jobId: string): Promise<{ state: LatentState; meta: ResultMeta }> {
  const [meta, wplus, delta] = await Promise.all([
    getJSON<ResultMeta>(store, keys.resultMeta(jobId)),
    store.get(keys.resultWplus(jobId)),
    store.get(keys.resultDelta(jobId)),
  ]);
  if (!meta || !wplus) throw new PermanentJobError('source_expired', `The result ${jobId} you started from has expired; start a new edit.`);
  return { state: { wplus: f32(wplus), ...(delta ? { styleDelta: f32(delta) } : {}) }, meta };
}

/** A mapper edit with a server's own mapper (not in the pack) runs that server's graph: its absolute file goes in the spec. */
export async function withServerMapper(packs: PackCatalog, pack: PackSummary, scope: string, spec: EditSpec): Promise<EditSpec> {
  if (spec.method !== 'mapper') return spec;
  const file = await packs.serverMapperFile(pack, scope, spec.mapper ?? spec.prompt);
  return file ? { ...spec, mapperFile: file } : spec;
}

export function startWorkerService(o: WorkerServiceOptions): WorkerService {
  const settings = new SettingsService(o.store, o.log);

  const checkRunningCaps = runningCapsCheck(o.queue, settings, o.metrics);

  const batcher = new Batcher(o.executor, o.batchSize, o.batchWindowMs, (size, outcomes) => {
    o.metrics.batchSize.observe(size);
    // Once per batch, not per job: every item of a batch carries the batch's engine time, and its images
    // are encoded concurrently, so the batch's encode time is the longest one. A batch with no image has none.
    const ok = outcomes.filter((out) => out.ok);
    if (!ok.length) return;
    o.metrics.engineSeconds.observe({ stage: 'engine' }, ok[0].engineMs / 1000);
    o.metrics.engineSeconds.observe({ stage: 'encode' }, Math.max(...ok.map((out) => out.encodeMs)) / 1000);
  });
  const started = Date.now();
  let done = 0;
  let failed = 0;
  let recent: number[] = []; // completion times within the last minute
  const running = new Set<string>();

  async function handle(job: ActiveJob, ride: Ride) {
    const { id, data, progress } = job;
    // Every store call rides out a Redis outage (up to REDIS_OUTAGE_MS): a restart costs the job nothing.
    const store = ridingStore(o.store, ride);
    if (await store.get(keys.cancel(id))) throw new PermanentJobError('cancelled', CANCELLED_MESSAGE);
    if (await store.get(keys.resultMeta(id))) return; // finished before a crash: nothing to redo
    await checkRunningCaps(job, ride);
    const pack = o.packs.get(data.pack);
    if (!pack) throw new PermanentJobError('unknown_pack', `Model pack "${data.pack}" is not installed on this worker.`);
    const pickedAt = Date.now();
    if (isOptimize(data.spec) || isTraining(data.spec)) throw new PermanentJobError('wrong_lane', 'Gradient jobs do not belong on the edit lane.');
    const item: ExecItem = { packDir: pack.dir, spec: await withServerMapper(o.packs, pack, data.scope, data.spec) };
    let seed: number | undefined;
    let photoKey: string | undefined;
    if (data.source.kind === 'seed') item.seed = seed = data.source.seed;
    else if (data.source.kind === 'photo') item.photo = await photoInput(store, (photoKey = data.source.key), data.pack);
    else {
      const source = await loadSource(store, data.source.jobId);
      item.source = source.state;
      seed = source.meta.seed;
      // An edit of a photo result starts from that result and is pasted back into the same photo.
      if (source.meta.photo) item.photo = await photoInput(store, (photoKey = source.meta.photo.key), data.pack);
    }
    await progress(10);
    const out = await batcher.submit(item);
    if (!out.ok) {
      await dropUnusablePhoto(store, data, out.code);
      if (out.permanent) throw new PermanentJobError(out.code, out.message);
      throw Object.assign(new Error(out.message), { code: out.code });
    }
    if (await store.get(keys.cancel(id))) throw new PermanentJobError('cancelled', CANCELLED_MESSAGE);
    await progress(90);
    const meta: ResultMeta = {
      jobId: id,
      pack: data.pack,
      untrained: out.untrained,
      resolution: out.resolution,
      info: out.info,
      source: data.source,
      seed,
      styleChannels: out.styleChannels,
      timings: { queueMs: pickedAt - data.submittedAt, engineMs: out.engineMs, encodeMs: out.encodeMs, batchSize: out.batchSize },
      completedAt: Date.now(),
    };
    const ttl = o.resultTtlS;
    const photo = photoKey ? await storePhotoResult(store, id, photoKey, data.pack, item.photo!, out, ttl) : undefined;
    if (photo) meta.photo = photo;
    await store.set(keys.resultPng(id), Buffer.from(out.png.buffer, out.png.byteOffset, out.png.byteLength), ttl);
    await store.set(keys.resultWplus(id), bytes(out.state.wplus), ttl);
    if (out.state.styleDelta) await store.set(keys.resultDelta(id), bytes(out.state.styleDelta), ttl);
    await setJSON(store, keys.resultMeta(id), meta, ttl); // written last: its presence means "result complete"
  }

  const handle_: ProcessorHandle = o.queue.process(
    async (job) => {
      running.add(job.id);
      try {
        await rideOutJob(o, job, handle);
        done += 1;
        recent.push(Date.now());
      } catch (err) {
        if (err instanceof PostponeJob) {
          o.log.debug({ jobId: job.id, reason: err.message }, 'job postponed');
          throw err;
        }
        const code = err instanceof PermanentJobError ? err.code : ((err as { code?: string }).code ?? 'internal');
        o.metrics.failures.inc({ cause: code });
        if (err instanceof PermanentJobError) failed += 1;
        o.log.warn({ jobId: job.id, attempt: job.attempt, code, err: (err as Error).message }, 'job failed');
        throw err;
      } finally {
        running.delete(job.id);
      }
    },
    // Room for one batch running and the next one filling (and, unbatched, for the Redis round trips
    // around each engine call to overlap).
    Math.max(4, o.batchSize * 2),
  );

  return {
    stats() {
      const s = batcher.stats;
      const now = Date.now();
      recent = recent.filter((t) => t > now - 60_000);
      const secs = Math.max((now - started) / 1000, 1e-3);
      const meanBatch = s.batches ? Math.round((s.items / s.batches) * 100) / 100 : 0;
      return { jobs: done, failed, batches: s.batches, meanBatch, jobsPerS: Math.round((done / secs) * 1000) / 1000, jobsLastMinute: recent.length };
    },
    running: () => [...running],
    async close() {
      await handle_.close();
      await o.executor.close();
    },
  };
}
