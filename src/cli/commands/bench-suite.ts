// `npm run bench`: the engine benchmark on the committed tiny pack and on random packs at 256² and
// full size (built once into .cache/random-256 and .cache/random-1024 by the toolkit), as one table.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { openPack } from '../../engine/index.ts';
import { int, parseFlags, str } from '../args.ts';
import { UsageError } from '../../errors.ts';
import { benchEngine, benchInvert, type BenchResult, type InvertBench } from './bench.ts';

export const usage = `usage: styleclip bench-suite [--runs N] [--batch N] [--device cpu|cuda] [--skip-large]

Runs bench on models/packs/tiny and on .cache/random-256 and .cache/random-1024 (packs with random
weights in FFHQ shapes, built with "npm run toolkit -- random-pack --resolution N --out .cache/random-N"
when missing; --skip-large leaves them out), then prints a table and checks that, at 256² and up, a
cached global edit costs at most 1.10× a render. Packs with an encoder also time the inversion of
one aligned face and a whole photo edit of the astronaut fixture (their ratios to a render follow).`;

const ROOT = resolve(import.meta.dirname, '../../..');
const TINY = resolve(ROOT, 'models/packs/tiny');
const LARGE_RESOLUTIONS = [256, 1024];
const randomPackDir = (resolution: number) => resolve(ROOT, `.cache/random-${resolution}`);
const PHOTO = resolve(ROOT, 'test/fixtures/photos/astronaut.jpg');

function buildRandomPack(resolution: number): void {
  const dir = randomPackDir(resolution);
  console.error(`building ${dir} (random ${resolution}px pack, once)…`);
  const r = spawnSync('bash', ['scripts/toolkit.sh', '-m', 'styleclip_toolkit', 'random-pack', '--resolution', String(resolution), '--out', dir], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (r.status !== 0) throw new Error(`could not build ${dir} (toolkit exit ${r.status})`);
}

const COLUMNS: (keyof BenchResult)[] = ['synthesis_ms', 'direction_ms', 'global_edit_ms', 'mapper_edit_ms', 'encode_ms', 'edits_per_s', 'load_ms'];


export function formatTable(results: (BenchResult & Partial<InvertBench>)[]): string {
  const head = ['pack', 'res', 'batch', 'provider', ...COLUMNS, 'edit/synth', 'invert_ms', 'photo_edit_ms', 'invert/synth', 'photo/synth'];
  const rows = results.map((r) => [
    r.pack,
    String(r.resolution),
    String(r.batch),
    r.provider.replace('ExecutionProvider', ''),
    ...COLUMNS.map((c) => (r[c] === null ? '-' : String(r[c]))),
    (r.global_edit_ms / r.synthesis_ms).toFixed(3),
    r.invert_ms == null ? '-' : String(r.invert_ms),
    r.photo_edit_ms == null ? '-' : String(r.photo_edit_ms),
    r.invert_per_synthesis == null ? '-' : r.invert_per_synthesis.toFixed(2),
    r.photo_edit_per_synthesis == null ? '-' : r.photo_edit_per_synthesis.toFixed(2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const args = parseFlags(argv, { runs: 'string', batch: 'string', device: 'string', 'skip-large': 'boolean' }, 'bench-suite');
  if (args.help) {
    console.log(usage);
    return 0;
  }
  const runs = int(args, 'runs', 1) ?? 5;
  const batch = int(args, 'batch', 1) ?? 1;
  if (!existsSync(resolve(TINY, 'pack.json'))) throw new UsageError(`the tiny pack is missing at ${TINY}; build it with: npm run toolkit -- tiny-pack --out models/packs/tiny`);
  const packs = [TINY];
  if (!args.flags['skip-large']) {
    for (const resolution of LARGE_RESOLUTIONS) {
      if (!existsSync(resolve(randomPackDir(resolution), 'pack.json'))) buildRandomPack(resolution);
      packs.push(randomPackDir(resolution));
    }
  }
  const results: (BenchResult & InvertBench)[] = [];
  for (const dir of packs) {
    const engine = await openPack(dir, { device: str(args, 'device') });
    try {
      console.error(`benchmarking ${dir}…`);
      // Tiny-pack timings are milliseconds: more runs keep their medians steady on a busy machine.
      const n = dir === TINY ? Math.max(runs, 50) : runs;
      results.push({ ...(await benchEngine(engine, batch, n)), ...(await benchInvert(engine, PHOTO, dir === TINY ? 10 : runs)) });
    } finally {
      await engine.close();
    }
  }
  console.log(formatTable(results));
  // The target is about full-size generators; on the tiny pack fixed per-call costs dominate.
  for (const r of results.filter((x) => x.resolution >= 256)) {
    const ratio = r.global_edit_ms / r.synthesis_ms;
    console.log(`${r.pack}: cached global edit = ${ratio.toFixed(3)}× render (target ≤ 1.10×) ${ratio <= 1.1 ? 'ok' : 'OVER'}`);
    if (r.invert_per_synthesis !== null && r.photo_edit_per_synthesis !== null) {
      const [inv, photo] = [r.invert_per_synthesis, r.photo_edit_per_synthesis];
      console.log(`${r.pack}: inversion = ${inv.toFixed(2)}× render (target ≤ 0.6× at 1024²), whole photo edit = ${photo.toFixed(2)}× render (target ≤ 2.2×)`);
    }
  }
  return 0;
}
