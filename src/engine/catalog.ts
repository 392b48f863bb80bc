// The model packs a deployment offers: the default pack (STYLECLIP_PACK) plus every folder with a pack.json
// in STYLECLIP_PACKS_DIR, named by folder. Reads pack.json only (the bot process never opens a model).
import fs from 'node:fs';
import path from 'node:path';
import { overlayDir, readOverlay, removeFromOverlay, type Overlay } from './overlay.ts';
import { findMapper, readPack, summarizePack } from './pack.ts';
import type { PackSummary } from './types.ts';

export class PackCatalog {
  readonly defaultPack: PackSummary;

  /** Named packs read so far, by folder, with the pack.json mtime they were read at. */
  private readonly cache = new Map<string, { mtimeMs: number; summary: PackSummary }>();

  /** Throws a one-line EngineError when the default pack is missing or invalid. */
  constructor(
    defaultDir: string,
    private readonly packsDir?: string,
    /** Servers' own mappers (`<mappersDir>/<scope>/<pack>/`, see overlay.ts); none when absent. */
    readonly mappersDir?: string,
  ) {
    this.defaultPack = summarizePack(readPack(defaultDir));
  }

  /** Rescanned on each call so packs installed while running show up. */
  list(): PackSummary[] {
    const packs = [this.defaultPack];
    if (!this.packsDir || !fs.existsSync(this.packsDir)) return packs;
    for (const entry of fs.readdirSync(this.packsDir, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name === this.defaultPack.name) continue;
      const found = this.get(entry.name);
      if (found) packs.push(found);
    }
    return packs;
  }

  /** Server overlays read so far, by folder, with the mappers.json mtime they were read at. */
  private readonly overlays = new Map<string, { mtimeMs: number; packDir: string; overlay: Overlay }>();

  /** A scope's mapper folder for a pack (read or not); undefined without a mappers dir. */
  overlayDir(pack: PackSummary, scope: string): string | undefined {
    return this.mappersDir ? overlayDir(this.mappersDir, scope, pack.name) : undefined;
  }

  /** A scope's own mappers for a pack (empty when none or when they do not fit the pack). */
  async overlay(pack: PackSummary, scope: string): Promise<Overlay> {
    const dir = this.overlayDir(pack, scope);
    if (!dir) return { dir: '', mappers: [] };
    let mtimeMs: number;
    try {
      mtimeMs = fs.statSync(path.join(dir, 'mappers.json')).mtimeMs;
    } catch {
      this.overlays.delete(dir);
      return { dir, mappers: [] };
    }
    const hit = this.overlays.get(dir);
    if (hit && hit.mtimeMs === mtimeMs && hit.packDir === pack.dir) return hit.overlay;
    let overlay: Overlay;
    try {
      overlay = await readOverlay(dir, readPack(pack.dir));
    } catch (err) {
      overlay = { dir, mappers: [], problem: (err as Error).message };
    }
    this.overlays.set(dir, { mtimeMs, packDir: pack.dir, overlay });
    return overlay;
  }

  /** The server view of a pack: its own mappers, then the scope's (a pack mapper keeps its slug). */
  async view(pack: PackSummary, scope: string): Promise<PackSummary> {
    const extra = (await this.overlay(pack, scope)).mappers.filter((m) => !pack.mappers.some((p) => p.slug === m.slug));
    if (extra.length === 0) return pack;
    return { ...pack, mappers: [...pack.mappers, ...extra.map((m) => ({ name: m.name, slug: m.slug, server: true }))] };
  }

  /** Removes a scope's own mapper (name or slug); its name, or undefined when the scope has none such. */
  removeServerMapper(pack: PackSummary, scope: string, text: string): string | undefined {
    const dir = this.overlayDir(pack, scope);
    const removed = dir ? removeFromOverlay(dir, text) : undefined;
    if (dir) this.overlays.delete(dir);
    return removed;
  }

  /** The absolute file of a scope's own mapper named by `text` (name or slug), unless the pack has it. */
  async serverMapperFile(pack: PackSummary, scope: string, text: string): Promise<string | undefined> {
    if (findMapper(pack.mappers, text)) return undefined;
    return findMapper((await this.overlay(pack, scope)).mappers, text)?.file;
  }

  /**
   * Called for every command and every job: reads only the named folder's pack.json, and only when it
   * changed, rather than rescanning STYLECLIP_PACKS_DIR (sync I/O on the bot's event loop).
   */
  get(name: string | null | undefined): PackSummary | undefined {
    if (!name || name === this.defaultPack.name) return this.defaultPack;
    if (!this.packsDir || name !== path.basename(name) || name === '.' || name === '..') return undefined;
    const dir = path.join(this.packsDir, name);
    let mtimeMs: number;
    try {
      mtimeMs = fs.statSync(path.join(dir, 'pack.json')).mtimeMs;
    } catch {
      this.cache.delete(name);
      return undefined;
    }
    const hit = this.cache.get(name);
    if (hit && hit.mtimeMs === mtimeMs) return hit.summary;
    try {
      const summary = summarizePack(readPack(dir), name);
      this.cache.set(name, { mtimeMs, summary });
      return summary;
    } catch {
      return undefined; // a broken pack is reported by `styleclip pack check`, not here
    }
  }
}
