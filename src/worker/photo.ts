// The worker's photo steps, run by the executor inside the engine thread (the detector and the encoder
// never run on the bot's event loop): before the edit, decode the photo and invert it (or reuse its
// stored inversion); after the render, paste the edit back and make the aligned before → after.
import { performance } from 'node:perf_hooks';
import type { Engine, LatentState, RenderedImage } from '../engine/types.ts';
import type { AlignTransform } from '../engine/photo/align.ts';
import type { Photo } from '../engine/photo/decode.ts';
import type { FaceSummary, PhotoInversion, PhotoPipeline } from '../engine/photo/pipeline.ts';
import type { RgbImage } from '../engine/photo/warp.ts';

/** A photo as a job brings it to the engine: its bytes, and its inversion when one is stored. */
export interface PhotoInput {
  bytes: Uint8Array;
  inversion?: { wplus: Float32Array; transform: AlignTransform; face: FaceSummary; firstFrameOnly: boolean };
}

/** What a photo edit returns besides the pasted-back image (ExecOutcome.png). */
export interface PhotoOutput {
  /** PNG: the aligned face before and after the edit. */
  beforeAfter: Uint8Array;
  face: FaceSummary;
  firstFrameOnly: boolean;
  /** Set when this job ran the encoder: the inversion to store for later edits of the photo. */
  inversion?: PhotoInversion;
  invertMs?: number;
}

/** Error codes that mean "this photo cannot be edited" (the photo is deleted, nothing is kept). */
export const PHOTO_INPUT_ERRORS = new Set(['not_an_image', 'too_many_pixels', 'no_face', 'face_too_small', 'no_encoder']);

export interface PreparedPhoto {
  photo: Photo;
  transform: AlignTransform;
  /** The crop the encoder saw (a fresh inversion); cut again from the photo otherwise. */
  aligned?: RgbImage;
  /** Start state when the job has no other source: the inversion's W+. */
  state: LatentState;
  face: FaceSummary;
  firstFrameOnly: boolean;
  inversion?: PhotoInversion;
  invertMs?: number;
}

const pipelines = new WeakMap<Engine, Promise<PhotoPipeline>>();

/** One pipeline (one detector) per engine, loaded on the first photo. */
export function pipelineFor(engine: Engine, device?: string): Promise<PhotoPipeline> {
  let p = pipelines.get(engine);
  if (!p) {
    p = import('../engine/photo/pipeline.ts').then(({ PhotoPipeline }) => new PhotoPipeline(engine, { device: device === 'cuda' ? 'cuda' : 'cpu' }));
    pipelines.set(engine, p);
  }
  return p;
}

export async function closePipeline(engine: Engine): Promise<void> {
  const p = pipelines.get(engine);
  pipelines.delete(engine);
  if (p) await (await p).close();
}

/** Decodes the photo; inverts it unless its inversion came with it. */
export async function preparePhoto(pipeline: PhotoPipeline, input: PhotoInput): Promise<PreparedPhoto> {
  const stored = input.inversion;
  if (stored) {
    const photo = await pipeline.decode(input.bytes);
    return { photo, transform: stored.transform, state: { wplus: stored.wplus }, face: stored.face, firstFrameOnly: stored.firstFrameOnly };
  }
  const t = performance.now();
  const inv = await pipeline.invert(input.bytes);
  return {
    photo: inv.photo,
    transform: inv.inversion.transform,
    aligned: inv.aligned,
    state: inv.state,
    face: inv.inversion.face,
    firstFrameOnly: inv.inversion.firstFrameOnly,
    inversion: inv.inversion,
    invertMs: performance.now() - t,
  };
}

/** The pasted-back photo (PNG, the result's main image) and the before → after. */
export async function finishPhoto(pipeline: PhotoPipeline, p: PreparedPhoto, image: RenderedImage): Promise<{ png: Uint8Array; photo: PhotoOutput }> {
  const { encodeRgb } = await import('../engine/photo/pipeline.ts');
  const done = await pipeline.finish(p.photo, p.transform, image, p.aligned);
  const [png, beforeAfter] = await Promise.all([encodeRgb(done.pasted), encodeRgb(done.beforeAfter)]);
  return {
    png,
    photo: { beforeAfter, face: p.face, firstFrameOnly: p.firstFrameOnly, ...(p.inversion ? { inversion: p.inversion, invertMs: p.invertMs } : {}) },
  };
}
