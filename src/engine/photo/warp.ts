// Similarity transforms between the photo and the aligned crop, and the bilinear sampler both
// directions use. Coordinates are continuous: pixel (i, j) covers [i, i+1) × [j, j+1), its centre
// is (i + 0.5, j + 0.5); the PIL QUAD transform of the FFHQ recipe uses the same convention.

/** x' = m[0]·x + m[1]·y + m[2], y' = m[3]·x + m[4]·y + m[5]. */
export type Affine = [number, number, number, number, number, number];

export function applyAffine(m: Affine, x: number, y: number): [number, number] {
  return [m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]];
}

export function invertAffine(m: Affine): Affine {
  const det = m[0] * m[4] - m[1] * m[3];
  if (!(Math.abs(det) > 1e-12)) throw new Error('invertAffine: the transform is singular');
  const a = m[4] / det;
  const b = -m[1] / det;
  const d = -m[3] / det;
  const e = m[0] / det;
  return [a, b, -(a * m[2] + b * m[5]), d, e, -(d * m[2] + e * m[5])];
}

/** Index i reflected into [0, n): …2 1 | 0 1 2 … n-1 | n-2 … (numpy's 'reflect', as the recipe pads). */
export function reflectIndex(i: number, n: number): number {
  if (n === 1) return 0;
  const period = 2 * (n - 1);
  let k = i % period;
  if (k < 0) k += period;
  return k < n ? k : period - k;
}

export interface RgbImage {
  width: number;
  height: number;
  rgb: Uint8Array;
}

/** An outWidth × outHeight RGB image sampled bilinearly from `src` at `toSrc`(pixel centre), reflecting past its edges. */
export function warpBilinear(src: RgbImage, toSrc: Affine, outWidth: number, outHeight: number): Uint8Array {
  const out = new Uint8Array(outWidth * outHeight * 3);
  const px = new Float32Array(3);
  let o = 0;
  for (let j = 0; j < outHeight; j++) {
    for (let i = 0; i < outWidth; i++, o += 3) {
      const [x, y] = applyAffine(toSrc, i + 0.5, j + 0.5);
      sampleInto(src.rgb, src.width, src.height, x - 0.5, y - 0.5, px);
      out[o] = Math.round(px[0]);
      out[o + 1] = Math.round(px[1]);
      out[o + 2] = Math.round(px[2]);
    }
  }
  return out;
}

/** Bilinear sample at index-space (fx, fy) with reflected edges, written to px[0..2]. */
export function sampleInto(rgb: Uint8Array, w: number, h: number, fx: number, fy: number, px: Float32Array): void {
  const x0 = Math.floor(fx);
  const y0 = Math.floor(fy);
  const tx = fx - x0;
  const ty = fy - y0;
  const xa = reflectIndex(x0, w) * 3;
  const xb = reflectIndex(x0 + 1, w) * 3;
  const ra = reflectIndex(y0, h) * w * 3;
  const rb = reflectIndex(y0 + 1, h) * w * 3;
  for (let c = 0; c < 3; c++) {
    const top = rgb[ra + xa + c] + tx * (rgb[ra + xb + c] - rgb[ra + xa + c]);
    const bottom = rgb[rb + xa + c] + tx * (rgb[rb + xb + c] - rgb[rb + xa + c]);
    px[c] = top + ty * (bottom - top);
  }
}
