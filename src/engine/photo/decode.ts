// A user's photo → RGB pixels, with limits checked from the header before anything is decoded.
import sharp, { type Metadata } from 'sharp';
import { EngineError } from '../types.ts';

/** A decoded photo: interleaved 8-bit RGB, upright (EXIF orientation applied), row-major. */
export interface Photo {
  width: number;
  height: number;
  /** width · height · 3 bytes. */
  rgb: Uint8Array;
  /** Container format as sharp names it (jpeg, png, webp, gif, tiff, heif). */
  format: string;
  /** The file had several frames (animated GIF/WebP, multi-page TIFF): only the first was kept. */
  firstFrameOnly: boolean;
  /** EXIF orientation found in the file (1 = none); already applied to the pixels. */
  orientation: number;
  /** The file had an alpha channel: it was flattened onto white. */
  flattened: boolean;
}

export interface DecodeOptions {
  /** Largest width · height accepted (default 40 MP: a 7700×5200 camera photo). */
  maxPixels?: number;
}

export const DEFAULT_MAX_PIXELS = 40_000_000;

// Raster formats a phone or a chat client sends. SVG/PDF are refused: vector input can declare any size.
const FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'heif', 'avif']);

const firstLine = (err: unknown) => String((err as Error)?.message ?? err).split('\n')[0];

/**
 * Decodes image bytes. Throws EngineError `not_an_image` (unknown, unsupported or corrupt data) or
 * `too_many_pixels` (from the header, before decoding: decompression bombs never allocate).
 */
export async function decodePhoto(bytes: Uint8Array, opts: DecodeOptions = {}): Promise<Photo> {
  const maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
  const { meta, format } = await readHeader(bytes, maxPixels);
  const orientation = meta.orientation ?? 1;
  const flattened = meta.hasAlpha === true;
  try {
    // failOn 'error': a truncated JPEG is refused instead of coming back half grey.
    let img = sharp(bytes, { limitInputPixels: maxPixels, pages: 1, failOn: 'error' }).autoOrient();
    if (flattened) img = img.flatten({ background: '#ffffff' });
    const { data, info } = await img.toColourspace('srgb').removeAlpha().raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== 3) throw new Error(`decoded ${info.channels} channels`);
    return {
      width: info.width,
      height: info.height,
      rgb: new Uint8Array(data.buffer, data.byteOffset, data.length),
      format,
      firstFrameOnly: (meta.pages ?? 1) > 1,
      orientation,
      flattened,
    };
  } catch (err) {
    throw new EngineError('not_an_image', `the ${format} file is corrupt or truncated (${firstLine(err)})`);
  }
}

/** What the header says, checked (format, pixel limit) without decoding any pixel: cheap enough for the bot process. */
export interface PhotoHeader {
  width: number;
  height: number;
  format: string;
  /** Frames in the file (> 1: animated or multi-page; only the first is used). */
  pages: number;
}

/** Throws `not_an_image` or `too_many_pixels` exactly as decodePhoto would, from the header alone. */
export async function checkPhotoHeader(bytes: Uint8Array, opts: DecodeOptions = {}): Promise<PhotoHeader> {
  const { meta, format, width, height } = await readHeader(bytes, opts.maxPixels ?? DEFAULT_MAX_PIXELS);
  return { width, height, format, pages: meta.pages ?? 1 };
}

async function readHeader(bytes: Uint8Array, maxPixels: number): Promise<{ meta: Metadata; format: string; width: number; height: number }> {
  if (bytes.length === 0) throw new EngineError('not_an_image', 'the file is empty, not an image');
  let meta: Metadata;
  try {
    meta = await sharp(bytes, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new EngineError('not_an_image', `the file is not an image sharp can read (${firstLine(err)})`);
  }
  const format = String(meta.format ?? 'unknown');
  if (!FORMATS.has(format)) {
    throw new EngineError('not_an_image', `the file is ${format}, not a photo: send a JPEG, PNG, WebP, GIF, TIFF or HEIF image`);
  }
  const width = meta.width ?? 0;
  // An animated file's height may cover every frame; the first frame is pageHeight tall.
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (!(width > 0 && height > 0)) throw new EngineError('not_an_image', 'the image header declares no size');
  if (width * height > maxPixels) {
    throw new EngineError('too_many_pixels', `the image is ${width}×${height} (${mp(width * height)} MP); the limit is ${mp(maxPixels)} MP`);
  }
  return { meta, format, width, height };
}

/** A photo from raw RGB (tests, rendered images). */
export function photoFromRgb(rgb: Uint8Array, width: number, height: number): Photo {
  if (rgb.length !== width * height * 3) throw new Error(`photoFromRgb: ${rgb.length} bytes for ${width}×${height}×3`);
  return { width, height, rgb, format: 'raw', firstFrameOnly: false, orientation: 1, flattened: false };
}

const mp = (px: number) => (px / 1e6).toFixed(px < 1e7 ? 1 : 0);
