// Generator output → image files: (x + 1) · 127.5, clamp, round; PNG/WebP/JPEG via sharp,
// `.npy` for the raw float32 [N, 3, H, W]. N > 1 in an image format → a horizontal strip.
import { access, writeFile } from 'node:fs/promises';
import { constants } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import sharp from 'sharp';
import { formatNpy } from './npy.ts';
import { EngineError } from './types.ts';

export type ImageFormat = 'png' | 'webp' | 'jpeg';
export type OutputFormat = ImageFormat | 'npy';

export interface EncodeOptions {
  /** WebP/JPEG quality 1–100 (default 90). */
  quality?: number;
}

export const MIME: Record<ImageFormat, 'image/png' | 'image/webp' | 'image/jpeg'> = {
  png: 'image/png',
  webp: 'image/webp',
  jpeg: 'image/jpeg',
};

/** Output format from a file name's extension; one-line error for others. */
export function outputFormat(path: string): OutputFormat {
  const ext = extname(path).toLowerCase();
  switch (ext) {
    case '.png':
      return 'png';
    case '.webp':
      return 'webp';
    case '.jpg':
    case '.jpeg':
      return 'jpeg';
    case '.npy':
      return 'npy';
    default:
      throw new EngineError('bad_output', `cannot tell the output format of ${path}: use .png, .webp, .jpg or .npy`);
  }
}

/** Interleaved RGB bytes of one or more [3, R, R] images side by side. */
export function toRgbStrip(raws: readonly Float32Array[], resolution: number): Buffer {
  const r = resolution;
  const plane = r * r;
  const n = raws.length;
  const out = Buffer.alloc(n * plane * 3);
  const rowBytes = n * r * 3;
  raws.forEach((raw, k) => {
    if (raw.length !== 3 * plane) throw new Error(`image ${k} has ${raw.length} values, expected 3×${r}×${r}`);
    // Plane by plane, row by row: sequential reads keep this loop cheap at 1024².
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < r; y++) {
        const src = c * plane + y * r;
        let dst = y * rowBytes + k * r * 3 + c;
        for (let x = 0; x < r; x++, dst += 3) {
          const v = (raw[src + x] + 1) * 127.5;
          out[dst] = v <= 0 ? 0 : v >= 255 ? 255 : Math.round(v); // NaN → 0 via the Buffer store
        }
      }
    }
  });
  return out;
}

/** Encodes raw generator output (one image, or several as a strip) to PNG/WebP/JPEG bytes. */
export async function encodeImage(
  raw: Float32Array | readonly Float32Array[],
  resolution: number,
  format: ImageFormat,
  opts: EncodeOptions = {},
): Promise<Buffer> {
  const raws = raw instanceof Float32Array ? [raw] : raw;
  const pixels = toRgbStrip(raws, resolution);
  const img = sharp(pixels, { raw: { width: resolution * raws.length, height: resolution, channels: 3 } });
  const quality = opts.quality ?? 90;
  if (format === 'png') return img.png().toBuffer();
  if (format === 'webp') return img.webp({ quality }).toBuffer();
  return img.jpeg({ quality }).toBuffer();
}

/** Fails early (before any model runs) when `path` cannot be written. */
export async function checkWritable(path: string): Promise<void> {
  const dir = dirname(resolve(path));
  try {
    await access(dir, constants.W_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'the folder does not exist' : code === 'EACCES' ? 'permission denied' : code;
    throw new EngineError('unwritable_output', `cannot write ${path}: ${why}`);
  }
}

/** Writes rendered images to `path`, format by extension. */
export async function writeImages(path: string, raws: readonly Float32Array[], resolution: number): Promise<void> {
  const format = outputFormat(path);
  let bytes: Buffer;
  if (format === 'npy') {
    const all = new Float32Array(raws.length * 3 * resolution * resolution);
    raws.forEach((r, i) => all.set(r, i * r.length));
    bytes = formatNpy([raws.length, 3, resolution, resolution], all);
  } else {
    bytes = await encodeImage(raws, resolution, format);
  }
  try {
    await writeFile(path, bytes);
  } catch (err) {
    throw new EngineError('unwritable_output', `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}
