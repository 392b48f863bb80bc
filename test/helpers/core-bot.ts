// One-call bot core for tests (bot-core's and the adapters' E2E tests): in-process queue, fake engine in a worker
// thread, a throwaway pack.json. `makeTestBot({ redisUrl })` uses BullMQ with a unique prefix instead;
// `makeTestBot({ engine: { delayMs: 300 } })` tells the fake engine how to behave (FakeEngineOptions).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { appOptions, createApp, queueTuning, type App, type AppOptions } from '../../src/runtime/app.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger } from '../../src/log.ts';
import { Redis } from 'ioredis';
import type { InvocationContext, JobUpdate, ReplyTarget } from '../../src/core/types.ts';
import type { FakeEngineOptions } from './core-fake-engine.ts';
import type { PackSummary } from '../../src/engine/types.ts';

export const FAKE_ENGINE = fileURLToPath(new URL('./core-fake-engine.ts', import.meta.url));

/**
 * A folder with a pack.json like the tiny pack's (the fake engine ignores the weights);
 * `extra.fakeEngine` (FakeEngineOptions) steers the fake engine that opens it.
 */
export function makeTestPack(name = 'testpack', extra: Record<string, unknown> & { fakeEngine?: FakeEngineOptions } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-pack-'));
  fs.writeFileSync(
    path.join(dir, 'pack.json'),
    JSON.stringify({
      format: 'styleclip-pack',
      version: 1,
      name,
      untrained: true,
      resolution: 4,
      zDim: 4,
      wDim: 4,
      numWs: 2,
      styleLayout: [
        { name: 'conv1', resolution: 4, channels: 4, wIndex: 0, toRgb: false },
        { name: 'to_rgb1', resolution: 4, channels: 2, wIndex: 1, toRgb: true },
      ],
      clip: { embedDim: 4, contextLength: 77 },
      defaults: { neutral: 'face', targetTemplate: 'face with {}', strength: 4.1, threshold: null },
      mappers: [{ name: 'curly hair', slug: 'curly_hair', file: 'mappers/curly_hair.onnx' }],
      ...extra,
    }),
  );
  return dir;
}

export function uniquePrefix(label: string): string {
  return `test-${label}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The options `styleclip start` would use with no environment (and a unique Redis prefix), for tests. */
export function testAppOptions(options: Partial<AppOptions> = {}): AppOptions {
  return appOptions(loadConfig({}), {
    logger: silentLogger,
    ...(options.redisUrl && !options.prefix ? { prefix: uniquePrefix('bot') } : {}),
    ...options,
  });
}

/** A bot core on the fake engine; `engine` steers the fake engine (it needs the bot's own pack, so no `packDir`). */
export async function makeTestBot({ engine, ...options }: Partial<AppOptions> & { engine?: FakeEngineOptions } = {}): Promise<App> {
  if (engine && options.packDir) throw new Error('makeTestBot: pass engine options or a packDir, not both');
  return createApp(
    testAppOptions({
      packDir: options.packDir ?? makeTestPack('testpack', engine ? { fakeEngine: engine } : {}),
      engineModule: FAKE_ENGINE,
      batchWindowMs: 2,
      tuning: { ...queueTuning(loadConfig({})), backoffMs: 50 },
      optimize: 'off', // no PyTorch probe for the fake engine (test/optimize.test.ts serves optimize jobs)
      ...options,
    }),
  );
}

let requestCounter = 0;

/** An invocation context; `user` defaults to "alice" on server "s1", channel "c1". */
export function ctxFor(user = 'alice', extra: Partial<InvocationContext> = {}): InvocationContext {
  return {
    platform: 'playground',
    serverId: 's1',
    channelId: 'c1',
    user: { id: user, name: user },
    isPlatformAdmin: false,
    requestId: `r${++requestCounter}-${Math.random().toString(36).slice(2, 8)}`,
    ...extra,
  };
}

export function targetFor(ctx: InvocationContext): ReplyTarget {
  return { platform: ctx.platform, channelId: ctx.channelId, messageId: `m-${ctx.requestId}` };
}

/** Collects a bot's job updates for one platform; `final(jobId)` waits for a job's last update. */
export function collectUpdates(bot: App, platform: InvocationContext['platform'] = 'playground') {
  const updates: JobUpdate[] = [];
  bot.onUpdate(platform, (u) => {
    updates.push(u);
  });
  const finals = () => updates.filter((u) => u.status === 'completed' || u.status === 'failed' || u.status === 'cancelled');
  return {
    updates,
    finals,
    async final(jobId: string, timeoutMs = 20_000): Promise<JobUpdate> {
      const start = Date.now();
      for (;;) {
        const found = finals().find((u) => u.jobId === jobId);
        if (found) return found;
        if (Date.now() - start > timeoutMs) throw new Error(`no final update for ${jobId}; got ${JSON.stringify(updates.map((u) => [u.jobId, u.status]))}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}

/** Deletes every Redis key under a test prefix. */
export async function dropPrefix(redisUrl: string, prefix: string) {
  const redis = new Redis(redisUrl);
  try {
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (found.length) await redis.del(...found);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The committed tiny pack (models/packs/tiny), or one built once per machine with the toolkit when it is missing. */
export function tinyPackDir(): string {
  const committed = path.join(ROOT, 'models/packs/tiny');
  if (fs.existsSync(path.join(committed, 'pack.json'))) return committed;
  const cached = path.join(os.tmpdir(), 'styleclip-test-tiny-pack');
  if (fs.existsSync(path.join(cached, 'pack.json'))) return cached;
  const building = `${cached}-${process.pid}`;
  execFileSync('bash', ['scripts/toolkit.sh', '-m', 'styleclip_toolkit', 'tiny-pack', '--out', building], { cwd: ROOT, stdio: 'ignore' });
  try {
    fs.renameSync(building, cached);
  } catch {
    fs.rmSync(building, { recursive: true, force: true }); // another test process won the race
  }
  return cached;
}

/** Starts `styleclip <role>` as a child process; resolves once it logs that it is ready (`url`: where it listens). */
export async function spawnStyleclip(
  role: 'worker' | 'bot' | 'start',
  env: Record<string, string>,
): Promise<ChildProcess & { url: string; output: () => string }> {
  const child = spawn(process.execPath, ['bin/styleclip.mjs', role], {
    cwd: ROOT,
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`styleclip ${role} did not start:\n${output}`)), 60_000);
    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      if (/"msg":"(worker ready|ready)"/.test(output)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`styleclip ${role} exited with ${code}:\n${output}`));
    });
  });
  const url = /"url":"(http[^"]+)"/.exec(output)?.[1] ?? '';
  return Object.assign(child, { url, output: () => output });
}

export function waitExit(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** A pack summary for planning tests (no files behind it): 64 px, 10 W+ rows, no ArcFace unless `extra` says so. */
export function packSummary(extra: Partial<PackSummary> = {}): PackSummary {
  return {
    name: 'p',
    dir: '/nowhere',
    untrained: true,
    resolution: 64,
    wDim: 32,
    numWs: 10,
    styleChannels: 100,
    convChannels: 80,
    mappers: [],
    identity: false,
    defaults: { neutral: 'a face', targetTemplate: 'a face with {}', strength: 4, threshold: null },
    ...extra,
  };
}
