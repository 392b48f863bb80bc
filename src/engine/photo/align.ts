// FFHQ alignment (NVIDIA ffhq-dataset's recipe) from BlazeFace's eyes and mouth centre: one
// similarity transform from the photo to a size² crop, bilinear, reflect-padded past the photo.
import sharp from 'sharp';
import { EngineError } from '../types.ts';
import type { Face, Point } from './blazeface.ts';
import type { Photo } from './decode.ts';
import { invertAffine, warpBilinear, type Affine, type RgbImage } from './warp.ts';

/**
 * The recipe takes the mouth as the mean of the two outer corners; BlazeFace gives the mouth's
 * centre, which lies further from the eyes. In the mean 68-point face the inner-lip centre is 5.6 %
 * and the outer-lip centre 8.8 % further along eye→mouth than the corners' mean, so the point is
 * pulled 7 % back towards the eyes (docs/photos.md).
 */
export const MOUTH_CENTRE_TO_CORNERS = 1 / 1.07;

/**
 * Smallest eye distance (photo pixels) that is aligned. At 256² the recipe puts the eyes ~64 px
 * apart, so 32 px means at most 2× upsampling for the encoder, and BlazeFace's ±1.5 px keypoint
 * error stays under 5 % of the crop's scale. A face with 32 px between the eyes is ~75 px wide.
 */
export const MIN_EYE_DISTANCE = 32;

/** Where the aligned crop sits in the photo, and the maps both ways (continuous pixel coordinates). */
export interface AlignTransform {
  /** Side of the aligned image in pixels. */
  size: number;
  /** Crop corners in photo pixels in the recipe's order: top-left, bottom-left, bottom-right, top-right. */
  quad: [Point, Point, Point, Point];
  /** Crop (u, v) → photo (x, y). */
  toPhoto: Affine;
  /** Photo (x, y) → crop (u, v). */
  toCrop: Affine;
}

export interface AlignedFace extends RgbImage {
  transform: AlignTransform;
}

export interface AlignOptions {
  /** Output side (default 256, the e4e encoder's input). */
  size?: number;
  /** Refuse faces whose eyes are closer than this many photo pixels (default MIN_EYE_DISTANCE). */
  minEyeDistance?: number;
}

type Vec = [number, number];
const sub = (a: Vec, b: Vec): Vec => [a[0] - b[0], a[1] - b[1]];
const add = (a: Vec, b: Vec): Vec => [a[0] + b[0], a[1] + b[1]];
const mul = (a: Vec, k: number): Vec => [a[0] * k, a[1] * k];
const len = (a: Vec) => Math.hypot(a[0], a[1]);
/** The recipe's flipud(v) · [-1, 1]: a quarter turn (counter-clockwise on screen, y down). */
const rot90 = (v: Vec): Vec => [-v[1], v[0]];

export function eyeDistance(face: Face): number {
  const { rightEye, leftEye } = face.keypoints;
  return Math.hypot(leftEye.x - rightEye.x, leftEye.y - rightEye.y);
}

/** Throws `face_too_small` when the eyes are closer than `min` pixels. */
export function checkFaceSize(face: Face, min = MIN_EYE_DISTANCE): void {
  const d = eyeDistance(face);
  if (d < min) {
    throw new EngineError(
      'face_too_small',
      `the face is too small to edit: its eyes are ${Math.round(d)} px apart, at least ${min} px are needed (a face about ${Math.round(min * 2.4)} px wide); send a closer or larger photo`,
    );
  }
}

/**
 * The recipe's crop square for a face: eye_left is the eye on the image's left (BlazeFace's
 * `rightEye`, the subject's right), the mouth is corrected to the corners' mean.
 */
export function ffhqTransform(face: Face, size = 256): AlignTransform {
  const { rightEye, leftEye, mouth } = face.keypoints;
  const eyeL: Vec = [rightEye.x, rightEye.y];
  const eyeR: Vec = [leftEye.x, leftEye.y];
  const eyeAvg = mul(add(eyeL, eyeR), 0.5);
  const eyeToEye = sub(eyeR, eyeL);
  const eyeToMouth = mul(sub([mouth.x, mouth.y], eyeAvg), MOUTH_CENTRE_TO_CORNERS);
  let x = sub(eyeToEye, rot90(eyeToMouth));
  x = mul(x, Math.max(2.0 * len(eyeToEye), 1.8 * len(eyeToMouth)) / len(x));
  const y = rot90(x);
  const c = add(eyeAvg, mul(eyeToMouth, 0.1));
  const tl = sub(sub(c, x), y);
  const corners = [tl, add(sub(c, x), y), add(add(c, x), y), sub(add(c, x), y)];
  const k = 2 / size;
  // u runs along +x (top-left → top-right), v along +y (top-left → bottom-left).
  const toPhoto: Affine = [x[0] * k, y[0] * k, tl[0], x[1] * k, y[1] * k, tl[1]];
  return {
    size,
    quad: corners.map(([px, py]) => ({ x: px, y: py })) as AlignTransform['quad'],
    toPhoto,
    toCrop: invertAffine(toPhoto),
  };
}

/**
 * The face aligned to a size² RGB crop, with its transform. Crops much larger than the output are
 * first shrunk by an integer factor with a proper filter, as the recipe does, so that the bilinear
 * resample does not alias. Throws `face_too_small`.
 */
export async function alignFace(photo: Photo, face: Face, opts: AlignOptions = {}): Promise<AlignedFace> {
  checkFaceSize(face, opts.minEyeDistance);
  const size = opts.size ?? 256;
  if (!(Number.isInteger(size) && size >= 16 && size <= 4096)) throw new EngineError('bad_size', `aligned size must be an integer 16–4096, got ${size}`);
  return alignWith(photo, ffhqTransform(face, size));
}

/** The aligned crop for a known transform (a stored inversion's), without detecting again. */
export async function alignWith(photo: Photo, transform: AlignTransform): Promise<AlignedFace> {
  const size = transform.size;
  const src = await sourceFor(photo, transform);
  // Photo → source: ((x − left) · sx, (y − top) · sy).
  const [a, b, c, d, e, f] = transform.toPhoto;
  const { left, top, sx, sy } = src;
  const toSrc: Affine = [a * sx, b * sx, (c - left) * sx, d * sy, e * sy, (f - top) * sy];
  return { width: size, height: size, rgb: warpBilinear(src.image, toSrc, size, size), transform };
}

/**
 * What the warp samples: the whole photo, or (for a large crop) the part around the crop shrunk by
 * floor(qsize / size / 2). Reflection happens at the photo's own edges either way.
 */
async function sourceFor(photo: Photo, t: AlignTransform): Promise<{ image: RgbImage; left: number; top: number; sx: number; sy: number }> {
  const qsize = 2 * Math.hypot(t.toPhoto[0], t.toPhoto[3]) * (t.size / 2);
  const shrink = Math.floor(qsize / t.size / 2);
  if (shrink <= 1) return { image: photo, left: 0, top: 0, sx: 1, sy: 1 };
  const margin = 4 * shrink;
  const xs = t.quad.map((p) => p.x);
  const ys = t.quad.map((p) => p.y);
  const x0 = Math.max(0, Math.floor(Math.min(...xs)) - margin);
  const y0 = Math.max(0, Math.floor(Math.min(...ys)) - margin);
  const x1 = Math.min(photo.width, Math.ceil(Math.max(...xs)) + margin);
  const y1 = Math.min(photo.height, Math.ceil(Math.max(...ys)) + margin);
  if (x1 - x0 < 2 * shrink || y1 - y0 < 2 * shrink) return { image: photo, left: 0, top: 0, sx: 1, sy: 1 };
  // Only whole-photo edges may be reflected: shrink the photo when the crop reaches past it.
  const inside = x0 > 0 && y0 > 0 && x1 < photo.width && y1 < photo.height;
  const [l, tp, w, h] = inside ? [x0, y0, x1 - x0, y1 - y0] : [0, 0, photo.width, photo.height];
  const sw = Math.max(1, Math.round(w / shrink));
  const sh = Math.max(1, Math.round(h / shrink));
  let img = sharp(photo.rgb, { raw: { width: photo.width, height: photo.height, channels: 3 } });
  if (inside) img = img.extract({ left: l, top: tp, width: w, height: h });
  const data = await img.resize(sw, sh, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer();
  return { image: { width: sw, height: sh, rgb: new Uint8Array(data.buffer, data.byteOffset, data.length) }, left: l, top: tp, sx: sw / w, sy: sh / h };
}
