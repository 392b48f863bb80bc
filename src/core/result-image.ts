// A finished job's image as the platforms take it: the stored PNG, or re-encoded (WebP, then smaller JPEGs)
// until it fits a platform's upload limit.
import sharp from 'sharp';
import type { Store } from '../state/store.ts';
import { keys } from '../state/keys.ts';
import type { ResultImage, ResultImageKind } from './types.ts';

export async function resultImage(store: Store, id: string, maxBytes = Number.POSITIVE_INFINITY, which: ResultImageKind = 'main'): Promise<ResultImage | null> {
  const png = await store.get(which === 'main' ? keys.resultPng(id) : keys.resultBeforeAfter(id));
  if (!png) return null;
  const jobId = which === 'main' ? id : `${id}-before-after`;
  if (png.length <= maxBytes) return { bytes: png, mime: 'image/png', filename: `${jobId}.png` };
  let smallest: ResultImage | null = null;
  for (const quality of [90, 75, 60]) {
    const bytes = await sharp(png).webp({ quality }).toBuffer();
    smallest = { bytes, mime: 'image/webp', filename: `${jobId}.webp` };
    if (bytes.length <= maxBytes) return smallest;
  }
  let size = (await sharp(png).metadata()).width ?? 1024;
  while (size > 32) {
    size = Math.floor(size / 2);
    const bytes = await sharp(png).resize(size, size).jpeg({ quality: 80 }).toBuffer();
    smallest = { bytes, mime: 'image/jpeg', filename: `${jobId}.jpg` };
    if (bytes.length <= maxBytes) return smallest;
  }
  return smallest;
}
