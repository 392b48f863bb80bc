// Users' photos in the store: the bytes under a random key with the result TTL (never in job data or
// logs), and once the worker has inverted one, its inversion beside it so that later edits of the same
// photo (➕/➖, `source:`) skip the encoder. Deleting a photo deletes all three.
import { randomBytes } from 'node:crypto';
import type { AlignTransform } from '../engine/photo/align.ts';
import { getJSON, setJSON, type Store } from './store.ts';
import { keys } from './keys.ts';

/** What a later edit needs besides the photo; W+ is stored apart as float32 bytes. */
export interface StoredInversion {
  /** The pack that inverted it: another pack's W+ does not fit. */
  pack: string;
  transform: AlignTransform;
  face: { score: number; box: { x: number; y: number; width: number; height: number }; eyeDistance: number; facesFound: number };
  firstFrameOnly: boolean;
}

export interface StoredPhoto {
  bytes: Uint8Array;
  inversion?: StoredInversion & { wplus: Float32Array };
}

/** A fresh unguessable key (the photo's id in the store). */
export function newPhotoKey(): string {
  return randomBytes(12).toString('base64url');
}

export async function storePhoto(store: Store, bytes: Uint8Array, ttlS: number): Promise<string> {
  const key = newPhotoKey();
  await store.set(keys.photo(key), Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), ttlS);
  return key;
}

/** The photo and, when it was inverted with `pack`, its inversion; null once expired or deleted. */
export async function loadPhoto(store: Store, key: string, pack: string): Promise<StoredPhoto | null> {
  const [bytes, inv, wplus] = await Promise.all([
    store.get(keys.photo(key)),
    getJSON<StoredInversion>(store, keys.photoInversion(key)),
    store.get(keys.photoWplus(key)),
  ]);
  if (!bytes) return null;
  const photo: StoredPhoto = { bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
  if (inv && wplus && inv.pack === pack) {
    photo.inversion = { ...inv, wplus: new Float32Array(wplus.buffer.slice(wplus.byteOffset, wplus.byteOffset + wplus.byteLength)) };
  }
  return photo;
}

export async function saveInversion(store: Store, key: string, inversion: StoredInversion & { wplus: Float32Array }, ttlS: number): Promise<void> {
  const { wplus, ...rest } = inversion;
  await store.set(keys.photoWplus(key), Buffer.from(wplus.buffer, wplus.byteOffset, wplus.byteLength), ttlS);
  await setJSON(store, keys.photoInversion(key), rest, ttlS);
}

export async function deletePhoto(store: Store, key: string): Promise<void> {
  await store.del(keys.photo(key), keys.photoInversion(key), keys.photoWplus(key));
}
