import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { checkWritable, encodeImage, outputFormat, toRgbStrip, writeImages } from '../src/engine/image.ts';
import { deltaPath, loadLatents, saveLatents, statesFromArray } from '../src/engine/latent.ts';
import { formatNpy, parseNpy, readNpy, writeNpy } from '../src/engine/npy.ts';

const dir = mkdtempSync(join(tmpdir(), 'engine-io-'));
afterAll(() => spawnSync('rm', ['-rf', dir]));

function python(code: string): string {
  const r = spawnSync('/usr/bin/python3', ['-c', code], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return r.stdout.trim();
}

describe('.npy', () => {
  it('round-trips with numpy in both directions', async () => {
    const data = new Float32Array([0.5, -1.25, 3, 1e-8, -0, 7]);
    await writeNpy(join(dir, 'ts.npy'), [2, 3], data);
    python(`
import numpy as np
a = np.load('${dir}/ts.npy')
assert a.dtype == np.float32 and a.shape == (2, 3), (a.dtype, a.shape)
assert a.tolist() == [[0.5, -1.25, 3.0], [np.float32(1e-8).item(), -0.0, 7.0]], a.tolist()
np.save('${dir}/py32.npy', (np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5) / 4)
np.save('${dir}/py64.npy', np.array([1.5, -2.25]))
np.save('${dir}/pyscalar.npy', np.float32(3))
np.save('${dir}/pyint.npy', np.arange(3))
np.save('${dir}/pyf.npy', np.asfortranarray(np.ones((2, 3), np.float32)))
`);
    const a = await readNpy(join(dir, 'py32.npy'));
    expect(a.shape).toEqual([2, 3, 4]);
    expect(a.data[23]).toBe((23 - 5) / 4);
    const b = await readNpy(join(dir, 'py64.npy'));
    expect(b.shape).toEqual([2]);
    expect(Array.from(b.data)).toEqual([1.5, -2.25]);
    expect((await readNpy(join(dir, 'pyscalar.npy'))).shape).toEqual([]);
    await expect(readNpy(join(dir, 'pyint.npy'))).rejects.toThrow(/dtype <i8; expected little-endian float32/);
    await expect(readNpy(join(dir, 'pyf.npy'))).rejects.toThrow(/Fortran order/);
  });

  it('rejects non-npy bytes and truncated data with one line', () => {
    expect(() => parseNpy(Buffer.from('PK\x03\x04 zip file'), 'x.npy')).toThrow(/x\.npy: not a usable \.npy file \(missing NUMPY magic\)/);
    const full = formatNpy([4], new Float32Array(4));
    expect(() => parseNpy(full.subarray(0, full.length - 3), 'y.npy')).toThrow(/data truncated/);
    expect(full.length % 16).toBe(0);
    expect((full.indexOf('\n') + 1) % 64).toBe(0); // data starts on a 64-byte boundary
  });
});

describe('latent files', () => {
  const dims = { numWs: 3, wDim: 2, styleChannels: 5 };
  it('accepts [wDim], [numWs, wDim] and [N, numWs, wDim]', () => {
    const w = statesFromArray([2], new Float32Array([1, 2]), dims, 'w.npy');
    expect(Array.from(w[0].wplus)).toEqual([1, 2, 1, 2, 1, 2]);
    expect(statesFromArray([3, 2], new Float32Array(6).fill(1), dims, 'a')).toHaveLength(1);
    const batch = statesFromArray([2, 3, 2], Float32Array.from({ length: 12 }, (_, i) => i), dims, 'b');
    expect(Array.from(batch[1].wplus)).toEqual([6, 7, 8, 9, 10, 11]);
  });
  it('names the expected shapes otherwise', () => {
    expect(() => statesFromArray([18, 2], new Float32Array(36), dims, 'bad.npy')).toThrow(
      'bad.npy has shape [18, 2]; expected [2] (one W), [3, 2] (one W+) or [N, 3, 2]',
    );
    expect(() => statesFromArray([1, 1, 3, 2], new Float32Array(6), dims, 'bad.npy')).toThrow(/bad\.npy has shape \[1, 1, 3, 2\]/);
  });
  it('saves W+ and a ΔS sidecar, and loads both back', async () => {
    const path = join(dir, 'lat.npy');
    const states = [{ wplus: new Float32Array([1, 2, 3, 4, 5, 6]), styleDelta: new Float32Array([0, 1, 0, 0, 2]) }, { wplus: new Float32Array(6).fill(9) }];
    expect(await saveLatents(path, states, dims)).toEqual([path, deltaPath(path)]);
    expect(deltaPath(path)).toBe(join(dir, 'lat.sdelta.npy'));
    const back = await loadLatents(path, dims);
    expect(back).toHaveLength(2);
    expect(Array.from(back[0].wplus)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(back[0].styleDelta!)).toEqual([0, 1, 0, 0, 2]);
    expect(Array.from(back[1].styleDelta!)).toEqual([0, 0, 0, 0, 0]);
    // Saving plain W+ again removes the stale sidecar.
    await saveLatents(path, [{ wplus: new Float32Array(6) }], dims);
    expect((await loadLatents(path, dims))[0].styleDelta).toBeUndefined();
  });
  it('refuses NaN latents', async () => {
    await writeNpy(join(dir, 'nan.npy'), [2], new Float32Array([NaN, 1]));
    await expect(loadLatents(join(dir, 'nan.npy'), dims)).rejects.toThrow(/NaN or infinite/);
  });
});

describe('images', () => {
  const r = 2;
  // channel planes: R = -1 (→0), G = 0 (→128 after rounding 127.5), B = 1 (→255)
  const raw = new Float32Array([-1, -1, -1, -1, 0, 0, 0, 0, 1, 1, 1, 2]);
  it('maps [-1, 1] to bytes with (x + 1)·127.5, clamp, round; strips side by side', () => {
    const px = toRgbStrip([raw, raw.map((x) => -x)], r);
    expect(px.length).toBe(2 * r * r * 3);
    expect(Array.from(px.subarray(0, 3))).toEqual([0, 128, 255]);
    expect(Array.from(px.subarray(6, 9))).toEqual([255, 128, 0]); // second image, first pixel of row 0
    expect(Array.from(toRgbStrip([new Float32Array(12).fill(NaN)], r).subarray(0, 3))).toEqual([0, 0, 0]);
  });
  it('encodes PNG, WebP and JPEG with sharp', async () => {
    const png = await encodeImage(raw, r, 'png');
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 2, 2]);
    const { data } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
    expect(Array.from(data.subarray(0, 3))).toEqual([0, 128, 255]);
    expect((await sharp(await encodeImage([raw, raw, raw], r, 'webp')).metadata()).width).toBe(6);
    expect((await sharp(await encodeImage(raw, r, 'jpeg', { quality: 50 })).metadata()).format).toBe('jpeg');
  });
  it('writes by extension; .npy is raw [N,3,H,W]', async () => {
    expect(outputFormat('a.JPG')).toBe('jpeg');
    expect(() => outputFormat('a.gif')).toThrow(/use \.png, \.webp, \.jpg or \.npy/);
    await writeImages(join(dir, 'o.npy'), [raw, raw], r);
    const back = parseNpy(readFileSync(join(dir, 'o.npy')));
    expect(back.shape).toEqual([2, 3, 2, 2]);
    expect(back.data[11]).toBe(2); // unclamped
  });
  it('reports unwritable paths in one line', async () => {
    await expect(checkWritable('/nonexistent-dir/x.png')).rejects.toThrow('cannot write /nonexistent-dir/x.png: the folder does not exist');
    const ro = join(dir, 'ro');
    writeFileSync(ro, '');
    chmodSync(ro, 0o444);
    await expect(writeImages(join(dir, 'ro', 'x.png'), [raw], r)).rejects.toThrow(/cannot write .*ro\/x\.png: ENOTDIR/);
  });
});
