// The model packs this deployment offers, read from pack.json only (the bot process never opens a model).
import fs from 'node:fs';
import path from 'node:path';

export interface PackInfo {
  /** The name users and job data refer to. */
  name: string;
  dir: string;
  untrained: boolean;
  resolution: number;
  styleChannels: number;
  mappers: { name: string; slug: string }[];
  defaults: { strength: number; threshold: number | null };
}

export class PackError extends Error {
  override name = 'PackError';
}

interface PackJson {
  name?: string;
  untrained?: boolean;
  resolution?: number;
  styleLayout?: { channels: number }[];
  mappers?: { name: string; slug: string }[];
  defaults?: { strength?: number; threshold?: number | null };
}

export function readPackInfo(dir: string, name?: string): PackInfo {
  const file = path.join(dir, 'pack.json');
  let json: PackJson;
  try {
    json = JSON.parse(fs.readFileSync(file, 'utf8')) as PackJson;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : (err as Error).message;
    throw new PackError(
      `Model pack ${dir}: pack.json ${why}. Make one with \`npm run toolkit -- tiny-pack --out ${dir}\` or point STYLECLIP_PACK at an installed pack.`,
    );
  }
  return {
    name: name ?? json.name ?? path.basename(dir),
    dir,
    untrained: json.untrained === true,
    resolution: json.resolution ?? 0,
    styleChannels: (json.styleLayout ?? []).reduce((sum, l) => sum + l.channels, 0),
    mappers: (json.mappers ?? []).map((m) => ({ name: m.name, slug: m.slug })),
    defaults: { strength: json.defaults?.strength ?? 4.1, threshold: json.defaults?.threshold ?? null },
  };
}

/** The default pack (STYLECLIP_PACK) plus every folder with a pack.json in STYLECLIP_PACKS_DIR (by folder name). */
export class PackCatalog {
  readonly defaultPack: PackInfo;

  constructor(
    defaultDir: string,
    private readonly packsDir?: string,
  ) {
    this.defaultPack = readPackInfo(defaultDir);
  }

  /** Rescanned on each call so packs installed while running show up. */
  list(): PackInfo[] {
    const packs = [this.defaultPack];
    if (!this.packsDir || !fs.existsSync(this.packsDir)) return packs;
    for (const entry of fs.readdirSync(this.packsDir, { withFileTypes: true })) {
      const dir = path.join(this.packsDir, entry.name);
      if (!entry.isDirectory() || !fs.existsSync(path.join(dir, 'pack.json')) || entry.name === this.defaultPack.name) continue;
      try {
        packs.push(readPackInfo(dir, entry.name));
      } catch {
        // a broken pack is reported by `styleclip pack check`, not here
      }
    }
    return packs;
  }

  /** Named packs read so far, by folder, with the pack.json mtime they were read at. */
  private readonly cache = new Map<string, { mtimeMs: number; info: PackInfo }>();

  /**
   * Called for every command and every job: reads only the named folder's pack.json, and only when it
   * changed, rather than rescanning STYLECLIP_PACKS_DIR (sync I/O on the bot's event loop).
   */
  get(name: string | null | undefined): PackInfo | undefined {
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
    if (hit && hit.mtimeMs === mtimeMs) return hit.info;
    try {
      const info = readPackInfo(dir, name);
      this.cache.set(name, { mtimeMs, info });
      return info;
    } catch {
      return undefined; // a broken pack is reported by `styleclip pack check`, as in list()
    }
  }
}

/** The pack's mapper for this prompt, if any (case, spaces and underscores ignored). */
export function mapperFor(pack: PackInfo, prompt: string): { name: string; slug: string } | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[\s_-]+/g, ' ').trim();
  const wanted = norm(prompt);
  return pack.mappers.find((m) => norm(m.name) === wanted || norm(m.slug) === wanted);
}
