// Worker benchmark: the whole path a user waits for (command → queue → worker batch → PNG → stored result →
// delivery), on the real engine, for 1/8/32 concurrent users, batching on vs off.
//
//   npx tsx scripts/bench-worker.ts [--pack DIR]... [--users 1,8,32] [--jobs-per-user 4] [--redis URL] [--device cpu|cuda] [--window MS] [--only on|off] [--json FILE]
//
// Each user runs a closed loop (submit, wait for the result, repeat). Reported per row: jobs/s, p50/p95
// latency, mean batch size, and the overhead beyond the engine's own time (latency − engine batch time):
// queue + source lookup + PNG encode + result storage + delivery.
import fs from 'node:fs';
import { appOptions, createApp, type App } from '../src/runtime/app.ts';
import { loadConfig } from '../src/config.ts';
import { silentLogger } from '../src/log.ts';
import { getJSON } from '../src/state/store.ts';
import { type ResultMeta } from '../src/jobs/types.ts';
import { keys } from '../src/state/keys.ts';
import type { InvocationContext, JobUpdate } from '../src/core/types.ts';

interface Row {
  pack: string;
  resolution: number;
  queue: 'memory' | 'redis';
  batching: 'on' | 'off';
  users: number;
  jobs: number;
  jobs_per_s: number;
  p50_ms: number;
  p95_ms: number;
  mean_batch: number;
  engine_p50_ms: number;
  overhead_p50_ms: number;
  overhead_p95_ms: number;
  failed: number;
}

function arg(name: string, fallback: string): string[] {
  const out: string[] = [];
  process.argv.forEach((a, i) => {
    if (a === `--${name}`) out.push(process.argv[i + 1]);
  });
  return out.length ? out : [fallback];
}

const pct = (xs: number[], p: number) => {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] * 10) / 10;
};

const packs = arg('pack', 'models/packs/tiny');
const usersList = arg('users', '1,8,32')[0].split(',').map(Number);
const perUser = Number(arg('jobs-per-user', '4')[0]);
const redisUrl = arg('redis', '')[0] || undefined;
const device = arg('device', process.env.STYLECLIP_DEVICE ?? 'cpu')[0];
const jsonOut = arg('json', '')[0];
const windowMs = Number(arg('window', '5')[0]);
const only = arg('only', '')[0];
// Two prompts: their text directions are computed in the warm-up, then cached (as in a busy server).
const PROMPTS = ['smiling face', 'blue eyes'];
let request = 0;

async function runLevel(bot: App, users: number, batching: 'on' | 'off'): Promise<Omit<Row, 'pack' | 'resolution' | 'queue'>> {
  const waiting = new Map<string, (u: JobUpdate) => void>();
  const off = bot.onUpdate('playground', (u) => {
    if (u.status === 'completed' || u.status === 'failed' || u.status === 'cancelled') waiting.get(u.jobId)?.(u);
  });
  const latencies: number[] = [];
  const overheads: number[] = [];
  const engine: number[] = [];
  const batches: number[] = [];
  let failed = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: users }, async (_, u) => {
      for (let k = 0; k < perUser; k++) {
        const ctx: InvocationContext = {
          platform: 'playground',
          serverId: 'bench',
          channelId: 'bench',
          user: { id: `user${u}` },
          isPlatformAdmin: false,
          requestId: `bench-${process.pid}-${++request}`,
        };
        const t0 = performance.now();
        let finish!: (u: JobUpdate) => void;
        const done = new Promise<JobUpdate>((r) => (finish = r));
        const jobId = `playground-${ctx.requestId}`;
        waiting.set(jobId, finish);
        const reply = await bot.invoke(
          'styleclip',
          { kind: 'text', text: `${PROMPTS[(u + k) % PROMPTS.length]} method:global seed:${u * 1000 + k}` },
          ctx,
          { platform: 'playground', channelId: 'bench' },
        );
        if (!reply.job) throw new Error(reply.text);
        const update = await done;
        const latency = performance.now() - t0;
        waiting.delete(jobId);
        if (update.status !== 'completed') {
          failed++;
          continue;
        }
        const meta = await getJSON<ResultMeta>(bot.store, keys.resultMeta(jobId));
        latencies.push(latency);
        engine.push(meta!.timings.engineMs);
        batches.push(meta!.timings.batchSize);
        overheads.push(latency - meta!.timings.engineMs);
      }
    }),
  );
  const secs = (performance.now() - started) / 1000;
  off();
  return {
    batching,
    users,
    jobs: latencies.length,
    jobs_per_s: Math.round((latencies.length / secs) * 100) / 100,
    p50_ms: pct(latencies, 50),
    p95_ms: pct(latencies, 95),
    mean_batch: Math.round((batches.reduce((a, b) => a + b, 0) / Math.max(batches.length, 1)) * 100) / 100,
    engine_p50_ms: pct(engine, 50),
    overhead_p50_ms: pct(overheads, 50),
    overhead_p95_ms: pct(overheads, 95),
    failed,
  };
}

const rows: Row[] = [];
for (const packDir of packs) {
  for (const batching of (['off', 'on'] as const).filter((b) => !only || b === only)) {
    const bot = await createApp(
      appOptions(loadConfig({ STYLECLIP_DEVICE: device }), {
        packDir,
        redisUrl,
        prefix: `bench-${process.pid}`,
        worker: true,
        batchSize: batching === 'on' ? 8 : 1,
        batchWindowMs: windowMs,
        logger: silentLogger,
      }),
    );
    // Generous limits so the bench measures the worker, not the caps.
    const admin: InvocationContext = {
      platform: 'playground',
      serverId: 'bench',
      channelId: 'bench',
      user: { id: 'bench' },
      isPlatformAdmin: true,
      requestId: 'bench-admin',
    };
    for (const setting of ['server-waiting 1000', 'server-running 1000']) {
      await bot.invoke('styleclip-admin', { kind: 'text', text: `set ${setting}` }, admin, { platform: 'playground', channelId: 'bench' });
    }
    try {
      await runLevel(bot, 1, batching); // warm-up: sessions and text directions cached
      await runLevel(bot, PROMPTS.length, batching);
      for (const users of usersList) {
        const row: Row = {
          pack: bot.packs.defaultPack.name,
          resolution: bot.packs.defaultPack.resolution,
          queue: redisUrl ? 'redis' : 'memory',
          ...(await runLevel(bot, users, batching)),
        };
        rows.push(row);
        console.log(JSON.stringify(row));
      }
    } finally {
      await bot.close();
    }
  }
}
if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(rows, null, 2));
console.table(rows.map(({ overhead_p95_ms: _, failed: __, ...shown }) => shown));
