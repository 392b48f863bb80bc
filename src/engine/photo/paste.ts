// Paste-back: an edited aligned face (any square size) warped into the photo through the inverse
// of the alignment and blended with a feathered mask. Pixels where the mask is 0 are never written,
// so everything outside it stays byte-identical to the photo.
import sharp from 'sharp';
import { EngineError } from '../types.ts';
import type { AlignTransform } from './align.ts';
import type { Photo } from './decode.ts';
import { applyAffine, sampleInto, type RgbImage } from './warp.ts';

export interface PasteOptions {
  /**
   * Mask in crop units (0–1 from the crop's edges). `inset`: untouched band along the crop's edge,
   * where the encoder reconstructs the background worst; `feather`: width of the ramp from 0 to 1.
   * Defaults 0.05 and 0.12: fully replaced over the central 66 % of the crop (the face, hairline,
   * chin), blended to nothing before the crop's edge.
   */
  inset?: number;
  feather?: number;
}

export interface PastedPhoto extends RgbImage {
  /** Bounding box of the pixels that may differ from the photo. */
  region: { x: number; y: number; width: number; height: number };
}

const smoothstep = (t: number) => (t <= 0 ? 0 : t >= 1 ? 1 : t * t * (3 - 2 * t));

/** Mask weight at crop-normalised (a, b): a rounded square, smooth on each axis; 0 outside. */
export function maskWeight(a: number, b: number, inset: number, feather: number): number {
  return smoothstep((Math.min(a, 1 - a) - inset) / feather) * smoothstep((Math.min(b, 1 - b) - inset) / feather);
}

/**
 * The photo with `edited` (editedSize² RGB, the aligned crop after the edit) pasted back.
 * A face larger than its place in the photo is first resized there with a proper filter.
 */
export async function pasteBack(photo: Photo, transform: AlignTransform, edited: Uint8Array, editedSize: number, opts: PasteOptions = {}): Promise<PastedPhoto> {
  if (edited.length !== editedSize * editedSize * 3) {
    throw new EngineError('bad_face_image', `the edited face has ${edited.length} bytes, expected ${editedSize}×${editedSize}×3`);
  }
  const inset = opts.inset ?? 0.05;
  const feather = opts.feather ?? 0.12;
  const { size, toCrop, quad } = transform;
  // The crop's side in photo pixels; downscale the face to about that before bilinear sampling.
  const qsize = Math.hypot(quad[3].x - quad[0].x, quad[3].y - quad[0].y);
  let face: RgbImage = { width: editedSize, height: editedSize, rgb: edited };
  const target = Math.max(8, Math.round(qsize));
  if (editedSize > 1.5 * target) {
    const data = await sharp(edited, { raw: { width: editedSize, height: editedSize, channels: 3 } })
      .resize(target, target, { kernel: 'lanczos3' })
      .raw()
      .toBuffer();
    face = { width: target, height: target, rgb: new Uint8Array(data.buffer, data.byteOffset, data.length) };
  }
  const k = face.width / size;
  const out = new Uint8Array(photo.rgb);
  const xs = quad.map((p) => p.x);
  const ys = quad.map((p) => p.y);
  const x0 = Math.max(0, Math.floor(Math.min(...xs)));
  const y0 = Math.max(0, Math.floor(Math.min(...ys)));
  const x1 = Math.min(photo.width, Math.ceil(Math.max(...xs)));
  const y1 = Math.min(photo.height, Math.ceil(Math.max(...ys)));
  const px = new Float32Array(3);
  let rx0 = x1, ry0 = y1, rx1 = x0, ry1 = y0;
  const [a, , , d] = toCrop;
  for (let y = y0; y < y1; y++) {
    // (u, v) of this row's first pixel centre, then stepped by (a, d) per pixel.
    let [u, v] = applyAffine(toCrop, x0 + 0.5, y + 0.5);
    for (let x = x0; x < x1; x++, u += a, v += d) {
      const m = maskWeight(u / size, v / size, inset, feather);
      if (m <= 0) continue;
      sampleInto(face.rgb, face.width, face.height, u * k - 0.5, v * k - 0.5, px);
      const o = (y * photo.width + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = Math.round(photo.rgb[o + c] + m * (px[c] - photo.rgb[o + c]));
      if (x < rx0) rx0 = x;
      if (x > rx1) rx1 = x;
      if (y < ry0) ry0 = y;
      if (y > ry1) ry1 = y;
    }
  }
  const region = rx1 >= rx0 ? { x: rx0, y: ry0, width: rx1 - rx0 + 1, height: ry1 - ry0 + 1 } : { x: 0, y: 0, width: 0, height: 0 };
  return { width: photo.width, height: photo.height, rgb: out, region };
}
