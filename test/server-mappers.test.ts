// A server's own mappers (src/engine/overlay.ts): a mapper folder the toolkit trained for the tiny pack, beside
// the pack at <dataDir>/mappers/<scope>/<pack>/, is part of that server's view of the pack (catalogue, planEdit,
// /styleclip-help) and the worker's engine runs it; other servers and the pack itself do not change.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PackCatalog } from '../src/engine/catalog.ts';
import { openPack } from '../src/engine/index.ts';
import { generatorHash, overlayDir, readOverlay } from '../src/engine/overlay.ts';
import { readPack } from '../src/engine/pack.ts';
import { planEdit } from '../src/core/plan-edit.ts';
import { DEFAULT_SETTINGS } from '../src/state/settings.ts';
import { withServerMapper } from '../src/worker/service.ts';
import { createApp, type App } from '../src/runtime/app.ts';
import { getJSON } from '../src/state/store.ts';
import { keys } from '../src/state/keys.ts';
import type { ResultMeta } from '../src/jobs/types.ts';
import { collectUpdates, ctxFor, targetFor, testAppOptions, tinyPackDir } from './helpers/core-bot.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const SCOPE = 'playground:s1';

let dataDir: string;
let mappersDir: string;
let folder: string;
const pack = () => tinyPackDir();

beforeAll(() => {
  dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-data-'));
  mappersDir = path.join(dataDir, 'mappers');
  folder = overlayDir(mappersDir, SCOPE, 'tiny');
  const run = spawnSync('bash', ['scripts/toolkit.sh', '-m', 'styleclip_toolkit', 'train-mapper', '--pack', pack(), '--prompt', 'green eyes', '--steps', '2', '--out', folder], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  if (run.status !== 0) throw new Error(`train-mapper failed: ${run.stderr}`);
}, 120_000);

afterAll(() => fs.rmSync(dataDir, { recursive: true, force: true }));

describe('server mappers: the overlay', () => {
  it('reads the toolkit\'s mapper folder, files made absolute', async () => {
    const overlay = await readOverlay(folder, readPack(pack()));
    expect(overlay.problem).toBeUndefined();
    expect(overlay.mappers).toEqual([expect.objectContaining({ name: 'green eyes', slug: 'green_eyes', file: path.join(folder, 'mappers/green_eyes.onnx') })]);
  });

  it('hashes the generator by streaming its files, to the hash the toolkit recorded', async () => {
    const copy = fs.mkdtempSync(path.join(os.tmpdir(), 'styleclip-pack-copy-'));
    try {
      fs.cpSync(pack(), copy, { recursive: true });
      const recorded = JSON.parse(fs.readFileSync(path.join(folder, 'mappers.json'), 'utf8')).pack.generator;
      expect(await generatorHash(readPack(copy))).toBe(recorded);
    } finally {
      fs.rmSync(copy, { recursive: true, force: true });
    }
  });

  it('is the server view of the pack for that server only; the pack is untouched', async () => {
    const catalog = new PackCatalog(pack(), undefined, mappersDir);
    const own = await catalog.view(catalog.defaultPack, SCOPE);
    expect(own.mappers.filter((m) => m.server)).toEqual([{ name: 'green eyes', slug: 'green_eyes', server: true }]);
    expect((await catalog.view(catalog.defaultPack, 'playground:other')).mappers.some((m) => m.server)).toBe(false);
    expect(catalog.defaultPack.mappers.some((m) => m.slug === 'green_eyes')).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(pack(), 'pack.json'), 'utf8')).mappers?.some((m: { slug: string }) => m.slug === 'green_eyes') ?? false).toBe(false);
  });

  it('planEdit picks the server mapper by prompt in the server view', async () => {
    const catalog = new PackCatalog(pack(), undefined, mappersDir);
    const plan = planEdit(DEFAULT_SETTINGS, await catalog.view(catalog.defaultPack, SCOPE), 'c1', { prompt: 'Green Eyes' });
    expect(plan).toMatchObject({ spec: { method: 'mapper', mapper: 'green_eyes' } });
    const elsewhere = planEdit(DEFAULT_SETTINGS, await catalog.view(catalog.defaultPack, 'playground:other'), 'c1', { prompt: 'green eyes', method: 'mapper' });
    expect(elsewhere).toMatchObject({ refusal: expect.stringContaining('has no mapper for "green eyes"') });
  });

  it('offers nothing from a folder of another generator, a half-written one, or an entry whose graph is missing', async () => {
    const copy = (name: string) => {
      const dir = path.join(dataDir, name);
      fs.cpSync(folder, dir, { recursive: true });
      return dir;
    };
    const tiny = readPack(pack());
    const other = copy('other-generator');
    const index = JSON.parse(fs.readFileSync(path.join(other, 'mappers.json'), 'utf8'));
    fs.writeFileSync(path.join(other, 'mappers.json'), JSON.stringify({ ...index, pack: { ...index.pack, generator: '0'.repeat(64) } }));
    expect(await readOverlay(other, tiny)).toMatchObject({ mappers: [], problem: expect.stringContaining('another generator') });

    const half = copy('half-written');
    fs.rmSync(path.join(half, 'mappers.json')); // the index is written last: without it, nothing is served
    expect(await readOverlay(half, tiny)).toEqual({ dir: half, mappers: [] });

    const gone = copy('graph-gone');
    fs.rmSync(path.join(gone, 'mappers/green_eyes.onnx'));
    expect((await readOverlay(gone, tiny)).mappers).toEqual([]);

    const outside = copy('outside');
    fs.writeFileSync(path.join(outside, 'mappers.json'), JSON.stringify({ ...index, mappers: [{ ...index.mappers[0], file: '../half-written/mappers/green_eyes.onnx' }] }));
    expect((await readOverlay(outside, tiny)).mappers).toEqual([]);
  });

  it('the engine runs a server mapper from the worker\'s spec', async () => {
    const catalog = new PackCatalog(pack(), undefined, mappersDir);
    const spec = await withServerMapper(catalog, catalog.defaultPack, SCOPE, { method: 'mapper', prompt: 'green eyes', mapper: 'green_eyes', strength: 1 });
    expect(spec.mapperFile).toBe(path.join(folder, 'mappers/green_eyes.onnx'));
    expect((await withServerMapper(catalog, catalog.defaultPack, 'playground:other', { method: 'mapper', prompt: 'green eyes', strength: 1 })).mapperFile).toBeUndefined();
    const engine = await openPack(pack());
    try {
      const [source] = await engine.sample([7]);
      const [out] = await engine.edit([source], [spec]);
      expect(out.info).toMatchObject({ method: 'mapper', mapper: 'green_eyes', strength: 1 });
      expect(out.state.wplus.every(Number.isFinite)).toBe(true);
      expect(out.state.wplus.some((v, i) => v !== source.wplus[i])).toBe(true);
    } finally {
      await engine.close();
    }
  });
});

describe('server mappers: the bot', () => {
  let bot: App;
  beforeAll(async () => {
    bot = await createApp(testAppOptions({ packDir: pack(), dataDir, batchWindowMs: 2, optimize: 'off' }));
  }, 60_000);
  afterAll(() => bot?.close());

  it('/styleclip-help lists the server\'s mapper; another server\'s help does not', async () => {
    const ctx = ctxFor('bob');
    expect((await bot.invoke('styleclip-help', { kind: 'text', text: '' }, ctx, targetFor(ctx))).text).toContain("green eyes (this server's)");
    const other = ctxFor('bob', { serverId: 's2' });
    expect((await bot.invoke('styleclip-help', { kind: 'text', text: '' }, other, targetFor(other))).text).not.toContain('green eyes');
  });

  it('a user\'s /styleclip for that prompt uses the server mapper, end to end on the real engine', async () => {
    const updates = collectUpdates(bot);
    const ctx = ctxFor('bob');
    const reply = await bot.invoke('styleclip', { kind: 'text', text: 'green eyes seed:3' }, ctx, targetFor(ctx));
    expect(reply.error).toBeFalsy();
    const final = await updates.final(reply.job!.id, 60_000);
    expect(final.status).toBe('completed');
    const meta = await getJSON<ResultMeta>(bot.store, keys.resultMeta(reply.job!.id));
    expect(meta?.info).toMatchObject({ method: 'mapper', mapper: 'green_eyes' });
  }, 90_000);

  it('/styleclip-admin mappers lists them; mapper-remove removes the server\'s own (admins only), never a pack\'s', async () => {
    const admin = ctxFor('root', { isPlatformAdmin: true });
    const say = (text: string, ctx = admin) => bot.invoke('styleclip-admin', { kind: 'text', text }, ctx, targetFor(ctx));
    expect((await say('mappers')).text).toBe("This server's mappers for pack tiny: green eyes (green_eyes).\nThe pack's: curly hair, purple hair (read-only).");
    expect(await say('mapper-remove green eyes', ctxFor('bob'))).toMatchObject({ error: true, text: expect.stringContaining('Only server admins') });
    expect(await say('mapper-remove curly hair')).toMatchObject({ error: true, text: expect.stringContaining('read-only') });
    expect(await say('mapper-remove blue nose')).toMatchObject({ error: true, text: 'This server has no mapper "blue nose". See /styleclip-admin mappers.' });
    expect(await say('mapper-remove Green Eyes')).toMatchObject({ text: 'Removed mapper "green eyes".' });
    expect(fs.existsSync(path.join(folder, 'mappers/green_eyes.onnx'))).toBe(false);
    expect((await say('mappers')).text).toContain('This server has no mappers of its own for pack tiny.');
    const ctx = ctxFor('bob');
    expect((await bot.invoke('styleclip-help', { kind: 'text', text: '' }, ctx, targetFor(ctx))).text).not.toContain('green eyes');
    const reply = await bot.invoke('styleclip', { kind: 'text', text: 'green eyes method:mapper' }, ctx, targetFor(ctx));
    expect(reply).toMatchObject({ error: true, text: expect.stringContaining('has no mapper for "green eyes"') });
  });
});
