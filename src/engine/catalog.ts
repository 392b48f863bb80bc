// The model packs a deployment offers: the default pack (STYLECLIP_PACK) plus every folder with a pack.json
// in STYLECLIP_PACKS_DIR, named by folder. Reads pack.json only (the bot process never opens a model).
import fs from 'node:fs';
import path from 'node:path';
import { readPack, summarizePack } from './pack.ts';
import type { PackSummary } from './types.ts';

export class PackCatalog {
  readonly defaultPack: PackSummary;

  /** Named packs read so far, by folder, with the pack.json mtime they were read at. */
  private readonly cache = new Map<string, { mtimeMs: number; summary: PackSummary }>();

  /** Throws a one-line EngineError when the default pack is missing or invalid. */
  constructor(
    defaultDir: string,
    private readonly packsDir?: string,
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
