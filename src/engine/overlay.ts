// A server's own mappers for a pack: a mapper folder written by `toolkit train-mapper --out` (models/README.md:
// `mappers.json` + `mappers/<slug>.onnx`) at `<mappersDir>/<scope>/<pack>/`, beside the pack rather than inside
// it, so packs stay read-only and shared. The "server view" of a pack is its own mappers plus that folder's
// (a pack mapper wins a slug both have). A folder is only read when its `pack.generator` hash matches the
// pack's generator files: a mapper only fits the generator it was trained on. `mappers.json` is written last
// (atomically) by the toolkit, so a half-written mapper is never listed.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { findMapper, type MapperEntry, type Pack } from './pack.ts';

/** A server mapper: `file` is absolute. */
export interface OverlayMapper extends MapperEntry {
  file: string;
}

export interface Overlay {
  dir: string;
  mappers: OverlayMapper[];
  /** Why the folder's mappers are not offered (another generator, unreadable index…); absent when fine. */
  problem?: string;
}

/** The folder name of a scope (`discord:123` → `discord_123`). */
export function scopeFolder(scope: string): string {
  return scope.replace(/[^\w.-]/g, '_');
}

/** Where a scope's mappers for a pack live (and where train-mapper writes them). */
export function overlayDir(mappersDir: string, scope: string, packName: string): string {
  return path.join(mappersDir, scopeFolder(scope), scopeFolder(packName));
}

const GENERATOR_KEYS = ['mapping', 'toStyles', 'synthesis', 'wAvg'] as const;
const hashCache = new Map<string, { stamp: string; hash: string }>();

/** What the cached hash of a pack's generator was computed for: each file's size and mtime. */
function stampOf(pack: Pack): string {
  return GENERATOR_KEYS.map((k) => {
    const s = fs.statSync(pack.files[k]);
    return `${s.size}:${s.mtimeMs}`;
  }).join('|');
}

/**
 * The toolkit's generator hash (train_mapper.py `files_hash`): sha256 over key, NUL, bytes, for each generator
 * file. Its files are streamed (a 1024² generator is over 100 MB), so the bot's event loop is never blocked for
 * long; cached by size + mtime.
 */
export async function generatorHash(pack: Pack): Promise<string> {
  const stamp = stampOf(pack);
  const hit = hashCache.get(pack.dir);
  if (hit && hit.stamp === stamp) return hit.hash;
  const h = createHash('sha256');
  for (const k of GENERATOR_KEYS) {
    h.update(`${k}\0`);
    for await (const chunk of fs.createReadStream(pack.files[k])) h.update(chunk as Buffer);
  }
  const hash = h.digest('hex');
  hashCache.set(pack.dir, { stamp, hash });
  return hash;
}

/** Reads a mapper folder for `pack`; a missing folder is an empty overlay. Never rejects. */
export async function readOverlay(dir: string, pack: Pack): Promise<Overlay> {
  const index = path.join(dir, 'mappers.json');
  let raw: string;
  try {
    raw = fs.readFileSync(index, 'utf8');
  } catch {
    return { dir, mappers: [] };
  }
  const fail = (problem: string): Overlay => ({ dir, mappers: [], problem });
  let json: { format?: unknown; version?: unknown; pack?: { generator?: unknown }; mappers?: unknown };
  try {
    json = JSON.parse(raw);
  } catch {
    return fail(`${index} is not valid JSON`);
  }
  if (json?.format !== 'styleclip-mappers' || json.version !== 1) return fail(`${index} is not a styleclip-mappers v1 index`);
  if (!Array.isArray(json.mappers)) return fail(`${index}: mappers must be a list`);
  let hash: string;
  try {
    hash = await generatorHash(pack);
  } catch (err) {
    return fail(`pack ${pack.dir}: ${(err as Error).message}`);
  }
  if (json.pack?.generator !== hash) return fail(`${index} was trained on another generator than pack ${pack.json.name}`);
  const mappers: OverlayMapper[] = [];
  const root = path.resolve(dir);
  for (const m of json.mappers as Partial<MapperEntry>[]) {
    if (typeof m?.name !== 'string' || typeof m.slug !== 'string' || typeof m.file !== 'string') continue;
    const file = path.resolve(root, m.file);
    if (!file.startsWith(root + path.sep) || !fs.existsSync(file)) continue; // never serve a file outside, or one not there
    if (mappers.some((x) => x.slug === m.slug)) continue;
    mappers.push({ name: m.name, slug: m.slug, file, ...(m.levels ? { levels: m.levels } : {}) });
  }
  return { dir, mappers };
}

/**
 * Removes the mapper `text` names (name or slug) from a mapper folder: the index is rewritten first (atomically:
 * a temporary file renamed over it), then the graph deleted, so no reader ever sees an entry without its file.
 * Returns the removed entry's name, or undefined when the folder has no such mapper.
 */
export function removeFromOverlay(dir: string, text: string): string | undefined {
  const index = path.join(dir, 'mappers.json');
  let json: { mappers?: Partial<MapperEntry>[] };
  try {
    json = JSON.parse(fs.readFileSync(index, 'utf8'));
  } catch {
    return undefined;
  }
  const list = Array.isArray(json.mappers) ? json.mappers.filter((m): m is MapperEntry => typeof m?.name === 'string' && typeof m.slug === 'string' && typeof m.file === 'string') : [];
  const found = findMapper(list, text);
  if (!found) return undefined;
  const tmp = `${index}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify({ ...json, mappers: json.mappers!.filter((m) => m !== found) }, null, 2)}\n`);
  fs.renameSync(tmp, index);
  const file = path.resolve(dir, found.file);
  if (file.startsWith(path.resolve(dir) + path.sep)) fs.rmSync(file, { force: true });
  return found.name;
}
