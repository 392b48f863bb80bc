// A deployment of real processes for end-to-end tests: `styleclip bot` with the playground and one or more
// `styleclip worker`s on Redis (a unique key prefix each), the real toolkit on the tiny pack; helpers to post
// to the playground and wait for what it shows.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { expect } from 'vitest';
import type { PlaygroundMessage } from '../../src/adapters/playground/index.ts';
import { dropPrefix, spawnStyleclip, tinyPackDir, uniquePrefix } from './core-bot.ts';

export const REDIS = 'redis://127.0.0.1:6379';

export async function api(base: string, route: string, body?: unknown) {
  const res = await fetch(base + route, body ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {});
  return { status: res.status, json: (await res.json()) as any };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 120_000): Promise<T> {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export type Proc = Awaited<ReturnType<typeof spawnStyleclip>>;

/** A worker logs this once PyTorch was found and it takes `what` ("optimization", "mapper training") jobs. */
export const waitGradientLane = (worker: Proc, what: string) =>
  waitFor(`the ${what} lane`, async () => (worker.output().includes(`taking ${what} jobs`) ? true : undefined));

/** Processes whose parent is `pid` (the toolkit's python runs as the worker's child: bash execs it). */
export function childrenOf(pid: number): string[] {
  const out = spawnSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' }).stdout;
  return out.split('\n').filter((l) => l.includes('styleclip_toolkit'));
}

export const isFinal = (m: PlaygroundMessage) => ['completed', 'failed', 'cancelled'].includes(m.status ?? '');

/** Starts deployments and, at `cleanup()`, kills what is left and drops their Redis keys. */
export class Deployments {
  private readonly children: ChildProcess[] = [];
  private readonly prefixes: string[] = [];

  /** `env` goes to both processes, `botEnv`/`workerEnv` to one. */
  async start(label: string, o: { env?: Record<string, string>; botEnv?: Record<string, string>; workerEnv?: Record<string, string> } = {}) {
    const prefix = uniquePrefix(label);
    this.prefixes.push(prefix);
    const env = { REDIS_URL: REDIS, STYLECLIP_REDIS_PREFIX: prefix, STYLECLIP_PACK: tinyPackDir(), WORKER_LOCK_MS: '2000', ...o.env };
    const bot = await spawnStyleclip('bot', { ...env, PLAYGROUND: '1', ...o.botEnv });
    this.children.push(bot);
    const startWorker = async () => {
      const w = await spawnStyleclip('worker', { ...env, ...o.workerEnv });
      this.children.push(w);
      return w;
    };
    const worker = await startWorker();
    const messages = async () => (await api(bot.url, '/api/messages')).json.messages as PlaygroundMessage[];
    const post = async (text: string, user = 'alice') => {
      const posted = await api(bot.url, '/api/messages', { user, text });
      expect(posted.status).toBe(200);
      return waitFor(`the reply to ${text}`, async () => (await messages()).find((m) => m.replyTo === posted.json.id && m.status !== 'pending'));
    };
    const reply = (id: string, done: (m: PlaygroundMessage) => boolean, what = 'a state', ms?: number) =>
      waitFor(`${what} of ${id}`, async () => (await messages()).find((m) => m.id === id && done(m)), ms);
    const react = (id: string, emoji: string, user = 'alice') => api(bot.url, `/api/messages/${id}/reactions`, { user, emoji });
    return { bot, worker, startWorker, messages, post, reply, react, isFinal };
  }

  async cleanup(): Promise<void> {
    for (const c of this.children.splice(0)) {
      if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    }
    for (const p of this.prefixes.splice(0)) await dropPrefix(REDIS, p);
  }
}
