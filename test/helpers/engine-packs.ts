// Packs for engine tests: the committed tiny pack, and the toolkit's parity fixtures built once
// per toolkit version into .cache (a few seconds; reused while models/toolkit is unchanged).
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');
export const TINY_PACK = join(ROOT, 'models/packs/tiny');

/** Over every toolkit .py file, subpackages too (the toolkit's own toolkit_hash rule). */
function toolkitHash(): string {
  const dir = join(ROOT, 'models/toolkit/styleclip_toolkit');
  const h = createHash('sha256');
  const files = (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.endsWith('.py')).sort();
  for (const f of files) h.update(f).update(readFileSync(join(dir, f)));
  return h.digest('hex').slice(0, 12);
}

/** Runs a toolkit subcommand writing into `out` (built in a temp folder, then renamed). */
function buildOnce(out: string, args: string[]): string {
  if (existsSync(out)) return out;
  const tmp = `${out}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(resolve(out, '..'), { recursive: true });
  const r = spawnSync('bash', ['scripts/toolkit.sh', '-m', 'styleclip_toolkit', ...args, '--out', tmp], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`toolkit ${args[0]} failed: ${r.stderr.split('\n').filter(Boolean).pop()}`);
  try {
    renameSync(tmp, out);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // another test process won the race
  }
  // Builds from older toolkit versions are never used again.
  const [parent, prefix] = [resolve(out, '..'), out.split('/').pop()!.replace(/-[0-9a-f]+$/, '-')];
  for (const name of readdirSync(parent)) {
    if (name.startsWith(prefix) && join(parent, name) !== out && !name.includes('.tmp-')) rmSync(join(parent, name), { recursive: true, force: true });
  }
  return out;
}

/** The committed tiny pack, or one built from the current toolkit when it is not there yet. */
export function tinyPack(): string {
  if (existsSync(join(TINY_PACK, 'pack.json'))) return TINY_PACK;
  return buildOnce(join(ROOT, '.cache', `tiny-${toolkitHash()}`), ['tiny-pack']);
}

/** Folder of `parity-fixtures` output (models/toolkit/PARITY.md). */
export function parityFixtures(): string {
  return buildOnce(join(ROOT, '.cache', `parity-${toolkitHash()}`), ['parity-fixtures']);
}
