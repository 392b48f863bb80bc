// `styleclip invert` and `styleclip edit --image … [--paste-back]` on the tiny pack and real photos.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { parseNpy } from '../src/engine/npy.ts';
import { applyAffine, decodePhoto, FaceDetector, ffhqTransform, findFace, maskWeight } from '../src/engine/photo/index.ts';
import { expectError, styleclip } from './helpers/engine-cli.ts';
import { tinyPack } from './helpers/engine-packs.ts';
import { animatedAstronaut, photoFixture, photoPath, pngHeaderOnly, smallFacePhoto } from './helpers/photo-fixtures.ts';

const pack = tinyPack();
const tmp = mkdtempSync(join(tmpdir(), 'photo-cli-test-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const out = (name: string) => join(tmp, name);
const astronaut = photoPath('astronaut.jpg');

/** A copy of the tiny pack without its encoder. */
function packWithoutEncoder(name: string): string {
  const bare = out(name);
  cpSync(pack, bare, { recursive: true, filter: (src) => !src.includes('/encoder') });
  const json = JSON.parse(readFileSync(join(bare, 'pack.json'), 'utf8'));
  delete json.encoder;
  writeFileSync(join(bare, 'pack.json'), JSON.stringify(json));
  return bare;
}

describe('styleclip invert', () => {
  it('inverts the astronaut: prints the face, writes W+ [1, L, 512-wide] and the aligned crop', async () => {
    const r = await styleclip(['invert', '--pack', pack, '--image', astronaut, '--out', out('w.npy'), '--aligned', out('crop.png')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^face: score 0\.9\d box 1[67]\d,[67]\d,1\d\d,1\d\d$/m);
    expect(r.stdout).not.toMatch(/faces found/);
    const w = parseNpy(readFileSync(out('w.npy')));
    const meta = JSON.parse(readFileSync(join(pack, 'pack.json'), 'utf8'));
    expect(w.shape).toEqual([1, meta.numWs, meta.wDim]);
    expect(w.data.every(Number.isFinite)).toBe(true);
    const crop = await sharp(out('crop.png')).metadata();
    expect([crop.width, crop.height]).toEqual([meta.encoder.inputSize, meta.encoder.inputSize]);
  });

  it('says when several faces were found and uses the largest', async () => {
    // The astronaut twice, the right one at 60 %.
    const a = await sharp(photoFixture('astronaut.jpg')).toBuffer();
    const small = await sharp(a).resize(307, 307).toBuffer();
    const two = await sharp({ create: { width: 900, height: 512, channels: 3, background: '#808080' } })
      .composite([
        { input: a, left: 0, top: 0 },
        { input: small, left: 560, top: 100 },
      ])
      .png()
      .toBuffer();
    writeFileSync(out('two.png'), two);
    const r = await styleclip(['invert', '--pack', pack, '--image', out('two.png'), '--out', out('w2.npy')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^2 faces found; using the largest$/m);
    expect(r.stdout).toMatch(/^face: score 0\.9\d box 1[67]\d,/m);
  });

  it('one-line errors: not an image, too many pixels, no face, face too small, no encoder; usage is exit 2', async () => {
    writeFileSync(out('notes.jpg'), 'these are not pixels');
    expectError(await styleclip(['invert', '--pack', pack, '--image', out('notes.jpg'), '--out', out('x.npy')]), 1, /not an image/);
    const truncated = photoFixture('astronaut.jpg').subarray(0, 4000);
    writeFileSync(out('truncated.jpg'), truncated);
    expectError(await styleclip(['invert', '--pack', pack, '--image', out('truncated.jpg'), '--out', out('x.npy')]), 1, /corrupt or truncated/);
    writeFileSync(out('bomb.png'), pngHeaderOnly(100_000, 100_000));
    expectError(await styleclip(['invert', '--pack', pack, '--image', out('bomb.png'), '--out', out('x.npy')]), 1, /100000×100000 .*limit is 40 MP/);
    expectError(await styleclip(['invert', '--pack', pack, '--image', photoPath('coffee.jpg'), '--out', out('x.npy')]), 1, /no face found in the photo/);
    writeFileSync(out('small.png'), await smallFacePhoto());
    expectError(await styleclip(['invert', '--pack', pack, '--image', out('small.png'), '--out', out('x.npy')]), 1, /too small to edit: its eyes are 2\d px apart, at least 32 px/);
    expectError(await styleclip(['invert', '--pack', pack, '--image', out('missing.jpg'), '--out', out('x.npy')]), 1, /cannot read .*missing\.jpg: no such file/);
    const bare = packWithoutEncoder('no-encoder');
    expectError(await styleclip(['invert', '--pack', bare, '--image', astronaut, '--out', out('x.npy')]), 1, /has no image encoder.*convert-encoder/);
    expectError(await styleclip(['invert', '--pack', pack, '--image', astronaut, '--out', out('x.png')]), 2, /--out must name a \.npy file/);
    expectError(await styleclip(['invert', '--pack', pack, '--out', out('x.npy')]), 2, /needs --image/);
  });

  it('an animated GIF: its first frame, said so', async () => {
    writeFileSync(out('anim.gif'), await animatedAstronaut());
    const r = await styleclip(['invert', '--pack', pack, '--image', out('anim.gif'), '--out', out('wa.npy')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^animated or multi-page image: using its first frame$/m);
    expect(r.stdout).toMatch(/^face: score 0\.9\d/m);
  });
});

describe('styleclip edit --image', () => {
  it('strength 0 reproduces the inversion’s render exactly', async () => {
    const inv = await styleclip(['invert', '--pack', pack, '--image', astronaut, '--out', out('inv.npy')]);
    expect(inv.code, inv.stderr).toBe(0);
    const g = await styleclip(['generate', '--pack', pack, '--latent', out('inv.npy'), '--out', out('recon.png')]);
    expect(g.code, g.stderr).toBe(0);
    const e = await styleclip(['edit', '--pack', pack, '--image', astronaut, '--prompt', 'curly hair', '--threshold', '0', '--strength', '0', '--out', out('zero.png')]);
    expect(e.code, e.stderr).toBe(0);
    expect(e.stdout).toMatch(/^face: score 0\.9\d/m);
    expect(readFileSync(out('zero.png')).equals(readFileSync(out('recon.png')))).toBe(true);
    // A real edit differs.
    const s = await styleclip(['edit', '--pack', pack, '--image', astronaut, '--prompt', 'curly hair', '--threshold', '0', '--strength', '5', '--out', out('five.png')]);
    expect(s.code, s.stderr).toBe(0);
    expect(readFileSync(out('five.png')).equals(readFileSync(out('recon.png')))).toBe(false);
  });

  it('--paste-back writes the whole photo; every pixel outside the face mask is the decoded photo’s', async () => {
    const r = await styleclip(['edit', '--pack', pack, '--image', astronaut, '--prompt', 'curly hair', '--threshold', '0', '--strength', '5', '--paste-back', '--out', out('pasted.png'), '--save-latent', out('pasted.npy')]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^pasted back: region \d+,\d+,\d+,\d+$/m);
    expect(parseNpy(readFileSync(out('pasted.npy'))).shape[0]).toBe(1);
    const photo = await decodePhoto(photoFixture('astronaut.jpg'));
    const { data, info } = await sharp(out('pasted.png')).raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height, info.channels]).toEqual([photo.width, photo.height, 3]);
    const detector = new FaceDetector();
    const face = await findFace(detector, photo);
    await detector.close();
    const t = ffhqTransform(face, 256);
    let outside = 0;
    let changedInside = 0;
    for (let y = 0; y < photo.height; y++) {
      for (let x = 0; x < photo.width; x++) {
        const [u, v] = applyAffine(t.toCrop, x + 0.5, y + 0.5);
        const m = maskWeight(u / 256, v / 256, 0.05, 0.12);
        const o = (y * photo.width + x) * 3;
        const same = data[o] === photo.rgb[o] && data[o + 1] === photo.rgb[o + 1] && data[o + 2] === photo.rgb[o + 2];
        if (m <= 0) {
          outside++;
          if (!same) throw new Error(`pixel ${x},${y} outside the mask changed`);
        } else if (m === 1 && !same) changedInside++;
      }
    }
    expect(outside).toBeGreaterThan(photo.width * photo.height * 0.8);
    expect(changedInside).toBeGreaterThan(1000);
  });

  it('coffee: the no-face message; usage errors for --paste-back without --image and two starts', async () => {
    expectError(
      await styleclip(['edit', '--pack', pack, '--image', photoPath('coffee.jpg'), '--prompt', 'smile', '--paste-back', '--out', out('c.png')]),
      1,
      /no face found in the photo/,
    );
    expectError(await styleclip(['edit', '--pack', pack, '--seed', '3', '--prompt', 'smile', '--paste-back', '--out', out('c.png')]), 2, /--paste-back needs --image/);
    expectError(await styleclip(['edit', '--pack', pack, '--seed', '3', '--image', astronaut, '--prompt', 'smile', '--out', out('c.png')]), 2, /exactly one of --seed N or --latent F\.npy or --image PHOTO/);
    expectError(await styleclip(['edit', '--pack', pack, '--image', astronaut, '--prompt', 'smile', '--paste-back', '--out', out('c.npy')]), 2, /--paste-back writes the photo/);
  });
});

describe('styleclip bench: photo figures', () => {
  it('invert_ms (one aligned face) and photo_edit_ms (the whole photo edit) beside synthesis_ms; null without encoder or photo', async () => {
    const r = await styleclip(['bench', '--pack', pack, '--runs', '1', '--json', '--photo', astronaut]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout);
    for (const k of ['synthesis_ms', 'detect_ms', 'align_ms', 'paste_ms', 'invert_ms', 'photo_edit_ms', 'invert_per_synthesis', 'photo_edit_per_synthesis']) expect(j[k], k).toBeGreaterThan(0);
    const plain = JSON.parse((await styleclip(['bench', '--pack', pack, '--runs', '1', '--json'])).stdout);
    expect(plain.invert_ms).toBeGreaterThan(0);
    expect(plain.photo_edit_ms).toBeNull();
    const bare = packWithoutEncoder('bench-no-encoder');
    const none = JSON.parse((await styleclip(['bench', '--pack', bare, '--runs', '1', '--json', '--photo', astronaut])).stdout);
    expect([none.invert_ms, none.photo_edit_ms, none.invert_per_synthesis, none.photo_edit_per_synthesis]).toEqual([null, null, null, null]);
    expect(none.detect_ms).toBeGreaterThan(0);
  });
});
