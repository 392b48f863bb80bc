// The styleclip CLI as users run it: exit codes 0 ok / 2 usage / 1 failure, one-line errors.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli/run.ts';
import { formatTable } from '../src/cli/commands/bench-suite.ts';
import { parseNpy, writeNpy } from '../src/engine/npy.ts';
import { expectError, styleclip, type CliResult } from './helpers/engine-cli.ts';
import { tinyPack } from './helpers/engine-packs.ts';

const pack = tinyPack();
const tmp = mkdtempSync(join(tmpdir(), 'cli-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const out = (name: string) => join(tmp, name);

describe('styleclip commands', () => {
  it('generate: same seed, same image; strips; .npy holds the raw [N,3,H,W] output', async () => {
    const a = await styleclip(['generate', '--pack', pack, '--seed', '5,6', '--truncation', '0.7', '--out', out('a.png'), '--save-latent', out('a.npy')]);
    expect(a.code, a.stderr).toBe(0);
    expect(a.stdout).toContain(`wrote ${out('a.png')}`);
    const meta = await sharp(out('a.png')).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 128, 64]);
    const b = await styleclip(['generate', '--pack', pack, '--latent', out('a.npy'), '--out', out('b.npy')]);
    expect(b.code, b.stderr).toBe(0);
    expect(parseNpy(readFileSync(out('b.npy'))).shape).toEqual([2, 3, 64, 64]);
    const c = await styleclip(['generate', '--pack', pack, '--seed', '5,6', '--truncation', '0.7', '--out', out('c.png')]);
    expect(c.code, c.stderr).toBe(0);
    expect(readFileSync(out('c.png')).equals(readFileSync(out('a.png')))).toBe(true);
  });

  it('edit (global): prints what it did; the saved latent carries ΔS for chaining', async () => {
    const r = await styleclip(['edit', '--pack', pack, '--prompt', 'curly hair', '--strength', '-3', '--threshold', '0.05', '--seed', '5', '--out', out('e.webp'), '--save-latent', out('e.npy')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/global: target "face with curly hair", neutral "face", strength -3, threshold 0.05, channels: \d+/);
    expect(r.stdout).toContain(`wrote ${out('e.sdelta.npy')}`);
    // Rendering the saved latent reproduces the edited image.
    const g = await styleclip(['generate', '--pack', pack, '--latent', out('e.npy'), '--out', out('e2.webp')]);
    expect(g.code, g.stderr).toBe(0);
    expect(readFileSync(out('e2.webp')).equals(readFileSync(out('e.webp')))).toBe(true);
  });

  it('edit (mapper) and direction', async () => {
    const m = await styleclip(['edit', '--pack', pack, '--prompt', 'hair', '--mapper', 'purple hair', '--seed', '5', '--out', out('m.png')]);
    expect(m.code, m.stderr).toBe(0);
    expect(m.stdout).toContain('mapper: purple_hair, strength 1');
    const d = await styleclip(['direction', '--pack', pack, '--prompt', 'smiling face', '--threshold', '0.05', '--out', out('d.npy')]);
    expect(d.code, d.stderr).toBe(0);
    const channels = Number(/^channels: (\d+)$/m.exec(d.stdout)?.[1]);
    const delta = parseNpy(readFileSync(out('d.npy')));
    expect(delta.shape).toEqual([304]);
    expect(delta.data.filter((x) => x !== 0).length).toBe(channels);
  });

  it('bench --json prints one JSON object of timings and the provider', async () => {
    const r = await styleclip(['bench', '--pack', pack, '--runs', '1', '--batch', '2', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    for (const k of ['synthesis_ms', 'direction_ms', 'global_edit_ms', 'mapper_edit_ms', 'encode_ms', 'edits_per_s']) expect(j[k]).toBeGreaterThan(0);
    expect(j).toMatchObject({ batch: 2, provider: 'CPUExecutionProvider' });
  });

  it('pack check: ok, or every problem and exit 1', async () => {
    const ok = await styleclip(['pack', 'check', pack]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^ok tiny: 64px/);
    const bad = join(tmp, 'badpack');
    cpSync(pack, bad, { recursive: true });
    await writeNpy(join(bad, 'directions/fs3.npy'), [3, 32], new Float32Array(96));
    const r = await styleclip(['pack', 'check', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/problem: fs3 .*\(3 rows, but styleLayout has 200 conv channels\)/);
    expect(r.stderr).toMatch(/error: pack .* has 1 problem$/m);
  });

  it('--help exits 0 with the usage', async () => {
    const r = await styleclip(['edit', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^usage: styleclip edit --pack DIR --prompt TEXT/);
  });
});

describe.concurrent('one-line errors', () => {
  const edit = (...extra: string[]) => ['edit', '--pack', pack, '--seed', '1', '--out', out('x.png'), ...extra];

  it('missing pack → 1', async () => {
    expectError(await styleclip(['generate', '--pack', join(tmp, 'nope'), '--seed', '1', '--out', out('x.png')]), 1, /no model pack at .*nope \(pack\.json not found\)/);
  });
  it('corrupt ONNX → 1', async () => {
    const dir = join(tmp, 'corrupt');
    cpSync(pack, dir, { recursive: true });
    writeFileSync(join(dir, 'generator/mapping.onnx'), 'garbage');
    expectError(await styleclip(['generate', '--pack', dir, '--seed', '1', '--out', out('x.png')]), 1, /cannot load mapping\.onnx .*rebuild the pack/);
  });
  it('wrong latent shape → 1', async () => {
    await writeNpy(out('bad-latent.npy'), [18, 512], new Float32Array(18 * 512));
    expectError(await styleclip(['generate', '--pack', pack, '--latent', out('bad-latent.npy'), '--out', out('x.png')]), 1, /has shape \[18, 512\]; expected \[32\] \(one W\), \[10, 32\] \(one W\+\) or \[N, 10, 32\]/);
  });
  it('empty prompt → 2', async () => {
    expectError(await styleclip(edit('--prompt', '  ')), 2, /--prompt is empty/);
  });
  it('over-long prompt → 1', async () => {
    expectError(await styleclip(edit('--prompt', 'very '.repeat(80))), 1, /too long/);
  });
  it('unknown mapper → 1, listing the mappers', async () => {
    expectError(await styleclip(edit('--prompt', 'x', '--mapper', 'mohawk')), 1, /no mapper "mohawk" .*available: curly hair \(curly_hair\), purple hair \(purple_hair\)/);
  });
  it('NaN or out-of-range strength → 2', async () => {
    expectError(await styleclip(edit('--prompt', 'x', '--strength', 'NaN')), 2, /--strength must be a number, got "NaN"/);
  });
  it('β outside [0, 1] → 2', async () => {
    expectError(await styleclip(edit('--prompt', 'x', '--threshold', '1.5')), 2, /--threshold β must be in \[0, 1\]/);
  });
  it('unwritable output → 1', async () => {
    expectError(await styleclip(['generate', '--pack', pack, '--seed', '1', '--out', '/nonexistent-dir/x.png']), 1, /cannot write \/nonexistent-dir\/x\.png: the folder does not exist/);
  });
  it('--device cuda without the CUDA provider → 1', async () => {
    expectError(await styleclip(['generate', '--pack', pack, '--seed', '1', '--out', out('x.png'), '--device', 'cuda']), 1, /CUDA execution provider is not installed/);
  });
});

/** The same dispatcher in-process (no process start): usage paths and messages. */
async function inProcess(args: string[]): Promise<CliResult> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => undefined);
  const err = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    const code = await main(args);
    const text = (spy: typeof log) => spy.mock.calls.map((c) => c.join(' ') + '\n').join('');
    return { code, stdout: text(log), stderr: text(err) };
  } finally {
    log.mockRestore();
    err.mockRestore();
  }
}

describe('dispatcher', () => {
  const edit = (...extra: string[]) => ['edit', '--pack', pack, '--seed', '1', '--out', out('x.png'), ...extra];

  it('--help for every command exits 0', async () => {
    for (const c of ['generate', 'edit', 'direction', 'bench', 'bench-suite', 'pack']) {
      const r = await inProcess([c, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`^usage: styleclip ${c}`));
    }
    expect((await inProcess([])).code).toBe(2);
    expect((await inProcess(['--help'])).stdout).toMatch(/generate +render images/);
  });

  it('usage mistakes → 2 with one line', async () => {
    expectError(await inProcess(['generate', '--pack', pack, '--seed', '1']), 2, /generate needs --out/);
    expectError(await inProcess(['generate', '--pack', pack, '--seed', '1', '--latent', 'a.npy', '--out', out('x.png')]), 2, /exactly one of --seed N or --latent/);
    expectError(await inProcess(['generate', '--pack', pack, '--seed', '-4', '--out', out('x.png')]), 2, /--seed must be an integer in 0\.\.4294967295/);
    expectError(await inProcess(['generate', '--pack', pack, '--seed', '1', '--out', out('x.gif')]), 2, /use \.png, \.webp, \.jpg or \.npy/);
    expectError(await inProcess(edit('--prompt', 'x', '--strength', '-60')), 2, /strength -60 is out of range: use −50…50/);
    expectError(await inProcess(edit('--prompt', 'x', '--strength', 'Infinity')), 2, /--strength must be a number/);
    expectError(await inProcess(edit('--prompt', 'x', '--threshold', '-0.1')), 2, /--threshold β must be in \[0, 1\]/);
    expectError(await inProcess(edit('--prompt', 'x', '--method', 'optimize')), 2, /--method must be global or mapper/);
    expectError(await inProcess(['edit', '--bogus']), 2, /unknown option --bogus for edit/);
    expectError(await inProcess(['edit', '--prompt']), 2, /--prompt needs a value/);
    // A mistyped option or a stray word is an error, never silently dropped.
    expectError(await inProcess(edit('--prompt', 'x', '-s', '3')), 2, /unknown option -s for edit \(options are spelled --name\)/);
    expectError(await inProcess(edit('--prompt', 'curly', 'hair')), 2, /unexpected argument "hair" for edit/);
    expectError(await inProcess(['bench', '--pack', pack, 'json']), 2, /unexpected argument "json" for bench/);
    expectError(await inProcess(['pack', 'lint', 'x']), 2, /unknown pack subcommand "lint"/);
    expectError(await inProcess(['frobnicate']), 2, /unknown command "frobnicate"/);
  });

  it('negative strength is allowed; β too high for any channel → 1, suggesting a lower one', async () => {
    const ok = await inProcess(edit('--prompt', 'curly hair', '--strength', '-2.5', '--threshold', 'auto'));
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/strength -2\.5, threshold 0\.\d+, channels: \d+/);
    expectError(await inProcess(edit('--prompt', 'curly hair', '--threshold', '0.99')), 1, /no style channel is above the threshold β=0\.99; use a lower threshold/);
  });
});

describe('bench-suite table', () => {
  it('lists each pack with its timings and the edit/render ratio', () => {
    const row = { pack: 'p', resolution: 1024, batch: 1, runs: 3, device: 'cpu', provider: 'CPUExecutionProvider', threads: 2, load_ms: 9,
      synthesis_ms: 100, direction_ms: 50, global_edit_ms: 105, mapper_edit_ms: null, encode_ms: 3, edits_per_s: 9.52 };
    const lines = formatTable([row]).split('\n');
    expect(lines[0]).toMatch(/^pack +res +batch +provider +synthesis_ms +direction_ms +global_edit_ms +mapper_edit_ms/);
    expect(lines[2]).toMatch(/^p +1024 +1 +CPU +100 +50 +105 +- +3 +9\.52 +9 +1\.050/);
  });
});
