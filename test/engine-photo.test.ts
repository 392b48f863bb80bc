// The photo front half on real photos: decode with limits, BlazeFace, FFHQ alignment, paste-back.
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { afterAll, describe, expect, it } from 'vitest';
import { EngineError } from '../src/engine/types.ts';
import {
  alignFace,
  decodePhoto,
  FaceDetector,
  ffhqTransform,
  findFace,
  maskWeight,
  pasteBack,
  photoFromRgb,
  applyAffine,
  invertAffine,
  type Face,
  type Photo,
  type Point,
} from '../src/engine/photo/index.ts';
import { anchorCentres } from '../src/engine/photo/blazeface.ts';
import { reflectIndex } from '../src/engine/photo/warp.ts';
import { benchPhoto } from '../src/cli/commands/bench.ts';
import { pngHeaderOnly } from './helpers/photo-fixtures.ts';

const fixture = (name: string) => readFileSync(new URL(`./fixtures/photos/${name}`, import.meta.url));
const detector = new FaceDetector();
afterAll(() => detector.close());

// Measured by hand on astronaut.jpg (512², zoomed 8× with a pixel grid), continuous coordinates:
// eye centres from the eyelid corners and iris, the mouth point as the middle of the lips.
const ASTRONAUT = {
  eyeImageLeft: { x: 203.5, y: 101.0 },
  eyeImageRight: { x: 246.5, y: 103.3 },
  mouthCentre: { x: 222.5, y: 146.5 },
};

const dist = (a: Point, b: Point) => Math.hypot(a.x - b.x, a.y - b.y);

async function expectCode(p: Promise<unknown>, code: string): Promise<EngineError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(EngineError);
  expect((err as EngineError).code).toBe(code);
  expect((err as EngineError).message).not.toContain('\n');
  return err as EngineError;
}

describe('decodePhoto', () => {
  it('decodes a JPEG to upright RGB with its metadata', async () => {
    const photo = await decodePhoto(fixture('astronaut.jpg'));
    expect([photo.width, photo.height, photo.rgb.length]).toEqual([512, 512, 512 * 512 * 3]);
    expect(photo).toMatchObject({ format: 'jpeg', firstFrameOnly: false, orientation: 1, flattened: false });
  });

  it('refuses data that is not an image, or a truncated one, as not_an_image', async () => {
    await expectCode(decodePhoto(Buffer.from('GIF89a? no, just text pretending')), 'not_an_image');
    await expectCode(decodePhoto(new Uint8Array(0)), 'not_an_image');
    const jpeg = fixture('astronaut.jpg');
    const err = await expectCode(decodePhoto(jpeg.subarray(0, jpeg.length >> 2)), 'not_an_image');
    expect(err.message).toMatch(/corrupt or truncated/);
    await expectCode(decodePhoto(Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="9000" height="9000"/>')), 'not_an_image');
  });

  it('refuses a header-declared huge image before decoding it (its pixel data is junk)', async () => {
    const err = await expectCode(decodePhoto(pngHeaderOnly(100_000, 100_000)), 'too_many_pixels');
    expect(err.message).toContain('100000×100000');
    // The same junk at a size within the limit fails in the decoder: the check above came first.
    await expectCode(decodePhoto(pngHeaderOnly(64, 64)), 'not_an_image');
  });

  it('applies the pixel limit the caller sets', async () => {
    const err = await expectCode(decodePhoto(fixture('astronaut.jpg'), { maxPixels: 200_000 }), 'too_many_pixels');
    expect(err.message).toBe('the image is 512×512 (0.3 MP); the limit is 0.2 MP');
  });

  it('keeps the first frame of an animated image and says so', async () => {
    const frame = (r: number, g: number, b: number) => sharp({ create: { width: 40, height: 30, channels: 3, background: { r, g, b } } }).png().toBuffer();
    const gif = await sharp([await frame(255, 0, 0), await frame(0, 0, 255)], { join: { animated: true } }).gif().toBuffer();
    expect((await sharp(gif).metadata()).pages).toBe(2);
    const photo = await decodePhoto(gif);
    expect([photo.width, photo.height, photo.firstFrameOnly]).toEqual([40, 30, true]);
    expect(Array.from(photo.rgb.subarray(0, 3))).toEqual([255, 0, 0]);
  });

  it('flattens transparency onto white', async () => {
    const png = await sharp({ create: { width: 4, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } } }).png().toBuffer();
    const photo = await decodePhoto(png);
    expect(photo.flattened).toBe(true);
    expect(Array.from(photo.rgb.subarray(0, 3))).toEqual([255, 255, 255]);
  });
});

describe('FaceDetector (BlazeFace) on real photos', () => {
  let astronaut: Photo;
  let face: Face;

  it('finds the astronaut with eyes and mouth within 3 px of hand-measured positions', async () => {
    astronaut = await decodePhoto(fixture('astronaut.jpg'));
    const faces = await detector.detect(astronaut);
    expect(faces).toHaveLength(1);
    face = faces[0];
    expect(face.score).toBeGreaterThan(0.85);
    const k = face.keypoints;
    // MediaPipe's "right eye" is the subject's right: the one on the image's left.
    expect(dist(k.rightEye, ASTRONAUT.eyeImageLeft)).toBeLessThan(3);
    expect(dist(k.leftEye, ASTRONAUT.eyeImageRight)).toBeLessThan(3);
    expect(dist(k.mouth, ASTRONAUT.mouthCentre)).toBeLessThan(3);
    // The box holds the face (eyes to chin), not the whole portrait.
    expect(face.box.width).toBeGreaterThan(80);
    expect(face.box.width).toBeLessThan(130);
    expect(await findFace(detector, astronaut)).toEqual(face);
  });

  it('finds the same face in an EXIF-rotated copy', async () => {
    // Pixels turned a quarter clockwise, EXIF orientation 8 tells viewers to turn them back.
    const rotated = await sharp(fixture('astronaut.jpg')).rotate(90).withMetadata({ orientation: 8 }).jpeg({ quality: 95 }).toBuffer();
    const photo = await decodePhoto(rotated);
    expect(photo.orientation).toBe(8);
    const again = await findFace(detector, photo);
    expect(dist(again.keypoints.rightEye, face.keypoints.rightEye)).toBeLessThan(2);
    expect(dist(again.keypoints.leftEye, face.keypoints.leftEye)).toBeLessThan(2);
    expect(dist(again.keypoints.mouth, face.keypoints.mouth)).toBeLessThan(2);
  });

  it('finds no face in the coffee cup', async () => {
    const photo = await decodePhoto(fixture('coffee.jpg'));
    expect(await detector.detect(photo)).toEqual([]);
    const err = await expectCode(findFace(detector, photo), 'no_face');
    expect(err.message).toMatch(/no face found/);
  });

  it('finds no human face in the cat (its best refined score, ~0.5, is under the 0.75 threshold)', async () => {
    const photo = await decodePhoto(fixture('chelsea.jpg'));
    expect(await detector.detect(photo)).toEqual([]);
    const loose = new FaceDetector({ minScore: 0.3 });
    const candidates = await loose.detect(photo);
    await loose.close();
    expect(candidates.length).toBeGreaterThan(0);
    expect(Math.max(...candidates.map((c) => c.score))).toBeLessThan(0.65);
  });

  it('finds a small face but refuses it as face_too_small, naming the minimum', async () => {
    const small = await sharp(fixture('astronaut.jpg')).resize(256, 256).png().toBuffer();
    const photo = await decodePhoto(small);
    const [f] = await detector.detect(photo);
    expect(dist(f.keypoints.rightEye, { x: ASTRONAUT.eyeImageLeft.x / 2, y: ASTRONAUT.eyeImageLeft.y / 2 })).toBeLessThan(2);
    const err = await expectCode(findFace(detector, photo), 'face_too_small');
    expect(err.message).toMatch(/eyes are 2\d px apart, at least 32 px are needed/);
    await expectCode(alignFace(photo, f), 'face_too_small');
  });

  it('finds a face of ~5 % of a larger photo', async () => {
    // The astronaut shrunk to 256² in the corner of a 1024² coffee photo: a 47 px face.
    const bg = await sharp(fixture('coffee.jpg')).resize(1024, 1024, { fit: 'fill' }).toBuffer();
    const inset = await sharp(fixture('astronaut.jpg')).resize(256, 256).toBuffer();
    const photo = await decodePhoto(await sharp(bg).composite([{ input: inset, left: 0, top: 768 }]).png().toBuffer());
    const faces = await detector.detect(photo);
    expect(faces).toHaveLength(1);
    expect(dist(faces[0].keypoints.leftEye, { x: ASTRONAUT.eyeImageRight.x / 2, y: 768 + ASTRONAUT.eyeImageRight.y / 2 })).toBeLessThan(2);
  });

  describe('FFHQ alignment and paste-back', () => {
    it('puts the eyes where the recipe does: 64 px apart, level, at the crop centre less 0.1 eye→mouth', async () => {
      const aligned = await alignFace(astronaut, face, { size: 256 });
      expect([aligned.width, aligned.height, aligned.rgb.length]).toEqual([256, 256, 256 * 256 * 3]);
      // The transform's own inverse maps the keypoints exactly.
      const t = aligned.transform;
      const [u0, v0] = applyAffine(t.toCrop, face.keypoints.rightEye.x, face.keypoints.rightEye.y);
      const [u1, v1] = applyAffine(t.toCrop, face.keypoints.leftEye.x, face.keypoints.leftEye.y);
      expect((u0 + u1) / 2).toBeCloseTo(128, 0);
      // Detected again on the aligned crop: the eyes land within 3 px of the recipe's positions.
      const again = await findFace(detector, photoFromRgb(aligned.rgb, 256, 256), { minEyeDistance: 0 });
      const e0 = again.keypoints.rightEye;
      const e1 = again.keypoints.leftEye;
      expect(dist(e0, { x: u0, y: v0 })).toBeLessThan(3);
      expect(dist(e1, { x: u1, y: v1 })).toBeLessThan(3);
      expect(Math.abs(e1.x - e0.x - 64)).toBeLessThan(3);
      expect(Math.abs(Math.atan2(e1.y - e0.y, e1.x - e0.x)) * (180 / Math.PI)).toBeLessThan(2);
      expect((e0.y + e1.y) / 2).toBeGreaterThan(116);
      expect((e0.y + e1.y) / 2).toBeLessThan(126);
    });

    it('reflects the photo where the crop leaves it, and shrinks large crops first', async () => {
      // A face whose crop reaches past the top edge: the top rows mirror the rows below the edge.
      const moved: Face = { ...face, keypoints: { ...face.keypoints } };
      for (const k of Object.keys(moved.keypoints) as (keyof Face['keypoints'])[]) {
        moved.keypoints[k] = { x: face.keypoints[k].x, y: face.keypoints[k].y - 60 };
      }
      const t = ffhqTransform(moved, 256);
      expect(Math.min(...t.quad.map((p) => p.y))).toBeLessThan(0);
      expect(t.quad[0].y).toBeLessThan(-20);
      // On a vertical ramp (value = row) the rows above the photo read the mirrored rows.
      const ramp = new Uint8Array(512 * 512 * 3);
      for (let i = 0; i < ramp.length; i++) ramp[i] = Math.min(255, Math.floor(i / (512 * 3)));
      const aligned = await alignFace(photoFromRgb(ramp, 512, 512), moved, { size: 256 });
      let checked = 0;
      for (let j = 0; j < 256; j++) {
        for (let i = 0; i < 256; i++) {
          const [, y] = applyAffine(t.toPhoto, i + 0.5, j + 0.5);
          if (y > -1 || y < -100) continue;
          expect(Math.abs(aligned.rgb[(j * 256 + i) * 3] - (0.5 - y))).toBeLessThanOrEqual(1);
          checked++;
        }
      }
      expect(checked).toBeGreaterThan(1000);
      // 1024² output of a 4× larger photo goes through the shrink path and matches the direct one.
      const big = await decodePhoto(await sharp(fixture('astronaut.jpg')).resize(2048, 2048).png().toBuffer());
      const scaled: Face = { ...face, keypoints: { ...face.keypoints } };
      for (const k of Object.keys(scaled.keypoints) as (keyof Face['keypoints'])[]) {
        scaled.keypoints[k] = { x: face.keypoints[k].x * 4, y: face.keypoints[k].y * 4 };
      }
      const fromBig = await alignFace(big, scaled, { size: 128 });
      const fromSmall = await alignFace(astronaut, face, { size: 128 });
      let diff = 0;
      for (let i = 0; i < fromBig.rgb.length; i++) diff += Math.abs(fromBig.rgb[i] - fromSmall.rgb[i]);
      expect(diff / fromBig.rgb.length).toBeLessThan(4);
    });

    it('leaves every pixel outside the mask byte-identical and replaces the inside', async () => {
      const aligned = await alignFace(astronaut, face, { size: 256 });
      const green = new Uint8Array(1024 * 1024 * 3);
      for (let i = 1; i < green.length; i += 3) green[i] = 255;
      const out = await pasteBack(astronaut, aligned.transform, green, 1024);
      const same = (o: number, rgb: ArrayLike<number>) => out.rgb[o] === rgb[0] && out.rgb[o + 1] === rgb[1] && out.rgb[o + 2] === rgb[2];
      const count = { outside: 0, outsideChanged: 0, inside: 0, insideNotGreen: 0 };
      for (let y = 0; y < astronaut.height; y++) {
        for (let x = 0; x < astronaut.width; x++) {
          const [u, v] = applyAffine(aligned.transform.toCrop, x + 0.5, y + 0.5);
          const m = maskWeight(u / 256, v / 256, 0.05, 0.12);
          const o = (y * astronaut.width + x) * 3;
          if (m === 0) {
            count.outside++;
            if (!same(o, astronaut.rgb.subarray(o, o + 3))) count.outsideChanged++;
          } else if (m === 1) {
            count.inside++;
            if (!same(o, [0, 255, 0])) count.insideNotGreen++;
          }
        }
      }
      expect(count.outsideChanged).toBe(0);
      expect(count.insideNotGreen).toBe(0);
      expect(count.outside).toBeGreaterThan(200_000);
      expect(count.inside).toBeGreaterThan(10_000);
      // Nothing changed outside the reported region.
      const r = out.region;
      for (let y = 0; y < astronaut.height; y++) {
        for (let x = 0; x < astronaut.width; x++) {
          if (x >= r.x && x < r.x + r.width && y >= r.y && y < r.y + r.height) continue;
          const o = (y * astronaut.width + x) * 3;
          if (out.rgb[o] !== astronaut.rgb[o] || out.rgb[o + 1] !== astronaut.rgb[o + 1] || out.rgb[o + 2] !== astronaut.rgb[o + 2]) {
            throw new Error(`pixel ${x},${y} outside the region changed`);
          }
        }
      }
    });

    it('pasting back the unedited crop (upscaled to 1024²) reproduces the face closely', async () => {
      const aligned = await alignFace(astronaut, face, { size: 256 });
      const up = await sharp(aligned.rgb, { raw: { width: 256, height: 256, channels: 3 } }).resize(1024, 1024).raw().toBuffer();
      const out = await pasteBack(astronaut, aligned.transform, up, 1024);
      let sum = 0;
      let sq = 0;
      let n = 0;
      for (let i = 0; i < out.rgb.length; i++) {
        const d = out.rgb[i] - astronaut.rgb[i];
        if (d === 0) continue;
        sum += Math.abs(d);
        sq += d * d;
        n++;
      }
      const r = out.region;
      const psnr = 10 * Math.log10((255 * 255) / (sq / (r.width * r.height * 3)));
      expect(sum / (r.width * r.height * 3)).toBeLessThan(3);
      expect(psnr).toBeGreaterThan(30);
      expect(n).toBeGreaterThan(0);
    });

    it('refuses an edited face of the wrong byte length', async () => {
      const aligned = await alignFace(astronaut, face, { size: 256 });
      await expectCode(pasteBack(astronaut, aligned.transform, new Uint8Array(10), 1024), 'bad_face_image');
    });
  });
});

describe('bench', () => {
  it('times detect, align and paste-back on a photo, null without one', async () => {
    const path = new URL('./fixtures/photos/astronaut.jpg', import.meta.url).pathname;
    const r = await benchPhoto(path, 64, 1, 'cpu');
    for (const v of Object.values(r)) expect(v).toBeGreaterThan(0);
    expect(Object.keys(r).sort()).toEqual(['align_ms', 'detect_ms', 'paste_ms']);
    expect(await benchPhoto(undefined, 64, 1, 'cpu')).toEqual({ detect_ms: null, align_ms: null, paste_ms: null });
  });
});

describe('geometry', () => {
  it('lays out BlazeFace anchors: 16×16×2 at stride 8 then 8×8×6 at stride 16 (128² input)', () => {
    const fine = anchorCentres(512, 2, 128);
    expect(Array.from(fine.subarray(0, 6))).toEqual([4, 4, 4, 4, 12, 4]);
    expect(Array.from(fine.subarray(1022))).toEqual([124, 124]);
    const coarse = anchorCentres(384, 6, 128);
    expect(Array.from(coarse.subarray(0, 2))).toEqual([8, 8]);
    expect(Array.from(coarse.subarray(12, 14))).toEqual([24, 8]);
    expect(() => anchorCentres(500, 2, 128)).toThrow(/square grid/);
  });

  it('reflects indices like numpy pad mode reflect', () => {
    expect([-3, -2, -1, 0, 1, 2, 3, 4, 5, 6].map((i) => reflectIndex(i, 4))).toEqual([3, 2, 1, 0, 1, 2, 3, 2, 1, 0]);
  });

  it('inverts affine maps', () => {
    const m = [0.5, -0.2, 10, 0.2, 0.5, -4] as const;
    const inv = invertAffine([...m]);
    const [x, y] = applyAffine([...m], 3, 7);
    const [a, b] = applyAffine(inv, x, y);
    expect(a).toBeCloseTo(3, 10);
    expect(b).toBeCloseTo(7, 10);
  });
});
