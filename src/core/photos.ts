// Users' photos on the way in: a file attached to /styleclip is checked (size from the platform's
// metadata before any download, then format and pixel count from the header, no decoding) and stored
// under a fresh key with the result TTL. Only the key goes into the job; nothing of the photo is logged.
// Adapters that take attachments register a PhotoFetcher for their platform's hosted files.
import { checkPhotoHeader } from '../engine/photo/decode.ts';
import type { Platform } from '../jobs/types.ts';
import { deletePhoto, storePhoto } from '../state/photos.ts';
import type { Store } from '../state/store.ts';
import type { Attachment, PhotoFetcher } from './types.ts';

/** Largest photo accepted (bytes): Discord's and Slack's own upload limits for most users are 10 MB or more. */
export const PHOTO_MAX_BYTES = 10 * 1024 * 1024;
/** Largest width · height accepted (the decoder's default, a 7700×5200 camera photo). */
export const PHOTO_MAX_PIXELS = 40_000_000;

export interface PhotoLimits {
  maxBytes: number;
  maxPixels: number;
}

const mb = (n: number) => `${(n / 1024 / 1024).toFixed(n < 10 * 1024 * 1024 ? 1 : 0)} MB`;

export class PhotoIntake {
  private readonly fetchers = new Map<Platform, PhotoFetcher>();

  constructor(
    private readonly store: Store,
    private readonly ttlS: number,
    readonly limits: PhotoLimits = { maxBytes: PHOTO_MAX_BYTES, maxPixels: PHOTO_MAX_PIXELS },
  ) {}

  /** An adapter's downloader for its platform's file URLs. */
  setFetcher(platform: Platform, fetcher: PhotoFetcher): void {
    this.fetchers.set(platform, fetcher);
  }

  async accept(platform: Platform, file: Attachment): Promise<{ key: string; animated: boolean } | { refusal: string }> {
    const { maxBytes, maxPixels } = this.limits;
    // What the platform says, before any byte is read.
    if (!(file.size >= 0) || file.size > maxBytes) return { refusal: `The image is ${mb(file.size)}; the limit is ${mb(maxBytes)}.` };
    if (file.contentType && !/^image\//i.test(file.contentType)) return { refusal: 'That file is not an image: send a JPEG, PNG, WebP, GIF, TIFF or HEIF photo.' };
    let bytes = file.bytes;
    if (!bytes) {
      const fetcher = this.fetchers.get(platform);
      if (!file.url || !fetcher || !fetcher.hosts(file.url)) return { refusal: 'Photos can only be attached to the message (files hosted by this platform).' };
      try {
        bytes = await fetcher.fetch(file.url, maxBytes);
      } catch {
        return { refusal: 'The image could not be downloaded; please send it again.' };
      }
    }
    if (bytes.length > maxBytes) return { refusal: `The image is ${mb(bytes.length)}; the limit is ${mb(maxBytes)}.` };
    let animated: boolean;
    try {
      animated = (await checkPhotoHeader(bytes, { maxPixels })).pages > 1;
    } catch (err) {
      const msg = (err as Error).message;
      return { refusal: `${msg.charAt(0).toUpperCase()}${msg.slice(1)}.` };
    }
    return { key: await storePhoto(this.store, bytes, this.ttlS), animated };
  }

  drop(key: string): Promise<void> {
    return deletePhoto(this.store, key);
  }
}
