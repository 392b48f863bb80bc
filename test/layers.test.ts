// The house rule of DESIGN.md, checked on every run: imports point down (adapters → commands → core →
// worker → state/jobs → engine → util) and no module imports itself back through others.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..');

/** Higher layers may import lower ones, and their own layer; never a higher one. */
const LAYERS: [prefix: string, rank: number][] = [
  ['src/cli/', 9],
  ['src/runtime/', 8],
  ['src/adapters/', 7],
  ['src/config.ts', 6],
  ['commands/', 5],
  ['src/core/', 4],
  ['src/worker/', 3],
  ['src/state/', 2],
  ['src/jobs/', 2],
  ['src/engine/', 1],
  ['src/metrics.ts', 0],
  ['src/log.ts', 0],
  ['src/errors.ts', 0],
  ['src/http.ts', 0],
  ['src/util/', 0],
];

function rank(file: string): number {
  const found = LAYERS.find(([prefix]) => file === prefix || file.startsWith(prefix));
  if (!found) throw new Error(`${file} belongs to no layer: add it to LAYERS`);
  return found[1];
}

function sources(dir: string): string[] {
  return (readdirSync(join(ROOT, dir), { recursive: true }) as string[])
    .filter((f) => /\.(ts|mjs)$/.test(f) && !f.endsWith('.d.ts'))
    .map((f) => join(dir, f));
}

/** Relative imports of a file (static, dynamic and re-exports), as repository paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\s*\(\s*|import\s+)'(\.{1,2}\/[^']+)'/g)].map((m) => m[1]);
  return specs.map((s) => relative(ROOT, resolve(ROOT, dirname(file), s)));
}

const FILES = [...sources('src'), ...sources('commands')];
const GRAPH = new Map(FILES.map((f) => [f, importsOf(f).filter((i) => FILES.includes(i))]));

describe('layers', () => {
  it('every import points to the same layer or a lower one', () => {
    const upward = [...GRAPH].flatMap(([file, deps]) => deps.filter((d) => rank(d) > rank(file)).map((d) => `${file} → ${d}`));
    expect(upward).toEqual([]);
  });

  it('no module imports itself back through others', () => {
    const cycles: string[] = [];
    const state = new Map<string, 'visiting' | 'done'>();
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === 'done') return;
      if (state.get(file) === 'visiting') {
        cycles.push([...path.slice(path.indexOf(file)), file].join(' → '));
        return;
      }
      state.set(file, 'visiting');
      for (const dep of GRAPH.get(file) ?? []) visit(dep, [...path, file]);
      state.set(file, 'done');
    };
    for (const file of FILES) visit(file, []);
    expect(cycles).toEqual([]);
  });

  it('the engine imports nothing of the bot', () => {
    const outside = [...GRAPH].filter(([f]) => f.startsWith('src/engine/')).flatMap(([f, deps]) => deps.filter((d) => !d.startsWith('src/engine/') && !d.startsWith('src/util/')).map((d) => `${f} → ${d}`));
    expect(outside).toEqual([]);
  });
});
