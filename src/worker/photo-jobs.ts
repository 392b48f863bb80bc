// Photo jobs on the worker's side of the store: the photo (and its inversion, once made) comes out of the
// store for the engine thread; after the edit the before → after and a new inversion go back in, with the
// result TTL. A photo that cannot be edited (no face, not an image…) is deleted at once.
import type { EditJobData, PhotoResultInfo } from '../jobs/types.ts';
import { PermanentJobError } from '../jobs/types.ts';
import { keys } from '../state/keys.ts';
import { deletePhoto, loadPhoto, saveInversion } from '../state/photos.ts';
import type { Store } from '../state/store.ts';
import type { ExecOutcome } from './executor.ts';
import { PHOTO_INPUT_ERRORS, type PhotoInput } from './photo.ts';

export const PHOTO_EXPIRED = 'Your photo has expired or was deleted; send it again.';

/** The photo under `key` as the engine takes it (with its inversion when `pack` made one). */
export async function photoInput(store: Store, key: string, pack: string): Promise<PhotoInput> {
  const photo = await loadPhoto(store, key, pack);
  if (!photo) throw new PermanentJobError('source_expired', PHOTO_EXPIRED);
  if (!photo.inversion) return { bytes: photo.bytes };
  const { wplus, transform, face, firstFrameOnly } = photo.inversion;
  return { bytes: photo.bytes, inversion: { wplus, transform, face, firstFrameOnly } };
}

/** Stores the before → after (and a fresh inversion under the photo's key); returns the result's photo info. */
export async function storePhotoResult(
  store: Store,
  jobId: string,
  key: string,
  pack: string,
  photo: PhotoInput,
  out: Extract<ExecOutcome, { ok: true }>,
  ttlS: number,
): Promise<PhotoResultInfo | undefined> {
  const p = out.photo;
  if (!p) return undefined;
  // The photo lives as long as its newest result: written again with this result's TTL (unless ❌ deleted it meanwhile).
  if (await store.get(keys.photo(key))) await store.set(keys.photo(key), Buffer.from(photo.bytes.buffer, photo.bytes.byteOffset, photo.bytes.byteLength), ttlS);
  await store.set(keys.resultBeforeAfter(jobId), Buffer.from(p.beforeAfter.buffer, p.beforeAfter.byteOffset, p.beforeAfter.byteLength), ttlS);
  const stored = p.inversion ?? photo.inversion;
  if (stored) await saveInversion(store, key, { pack, wplus: stored.wplus, transform: stored.transform, face: stored.face, firstFrameOnly: stored.firstFrameOnly }, ttlS);
  const { score, box, facesFound } = p.face;
  return { key, score, box, facesFound, firstFrameOnly: p.firstFrameOnly, inverted: !!p.inversion };
}

/** A photo job that failed because of the photo itself: the photo is deleted (nothing of it is kept). */
export async function dropUnusablePhoto(store: Store, data: EditJobData, code: string): Promise<void> {
  if (data.source.kind === 'photo' && PHOTO_INPUT_ERRORS.has(code)) await deletePhoto(store, data.source.key);
}
