// "Edit your own photo", the one pipeline the CLI and the worker share:
//
//   photo bytes → decode (limits) → detect (largest face) → align to the encoder's input → encode → W+
//   … edit + render (the caller's engine calls) …
//   → paste the edited face back into the photo, and an aligned before → after strip.
//
// The inversion (W+, the alignment transform, what was found) is plain data: the worker stores it so
// that later edits of the same photo (➕/➖, `source:`) reuse it without running the encoder again.
import { performance } from 'node:perf_hooks';
import sharp from 'sharp';
import { toRgbStrip } from '../image.ts';
import type { Device } from '../session.ts';
import { EngineError, type Engine, type LatentState, type RenderedImage } from '../types.ts';
import { alignFace, alignWith, checkFaceSize, eyeDistance, MIN_EYE_DISTANCE, type AlignTransform } from './align.ts';
import { FaceDetector, type Face } from './blazeface.ts';
import { decodePhoto, DEFAULT_MAX_PIXELS, type Photo } from './decode.ts';
import { pasteBack, type PastedPhoto } from './paste.ts';
import type { RgbImage } from './warp.ts';

/** What was found in the photo, kept with the inversion (and shown to the user). */
export interface FaceSummary {
  score: number;
  /** Photo pixels, rounded. */
  box: { x: number; y: number; width: number; height: number };
  eyeDistance: number;
  /** Faces found in the photo; the largest was used. */
  facesFound: number;
}

/** Plain data: what a later edit of the same photo needs besides the photo itself. */
export interface PhotoInversion {
  /** W+ from the encoder, [numWs · wDim]. */
  wplus: Float32Array;
  transform: AlignTransform;
  face: FaceSummary;
  /** The photo had several frames: the first was used. */
  firstFrameOnly: boolean;
  photoWidth: number;
  photoHeight: number;
}

export interface InvertTimings {
  decodeMs: number;
  detectMs: number;
  alignMs: number;
  encodeMs: number;
}

export interface InvertedPhoto {
  photo: Photo;
  inversion: PhotoInversion;
  /** The aligned face the encoder saw (encoder input size). */
  aligned: RgbImage;
  /** Start state for edits: the inversion's W+. */
  state: LatentState;
  timings: InvertTimings;
}

export interface FinishedPhoto {
  /** The whole photo with the edited face pasted back; everything outside the mask is the decoded photo. */
  pasted: PastedPhoto;
  /** The aligned face before (the photo's crop) and after (the edit), side by side. */
  beforeAfter: RgbImage;
}

export interface PhotoPipelineOptions {
  device?: Device;
  /** Largest width · height decoded (default DEFAULT_MAX_PIXELS). */
  maxPixels?: number;
  minEyeDistance?: number;
  /** A detector to share (its sessions stay open); default: one of its own. */
  detector?: FaceDetector;
}

/** Largest side of the before → after strip's panels. */
export const BEFORE_AFTER_MAX = 512;

/** One line for people and logs: `face: score 0.92 box 212,77,101,101`. No pixel of the photo. */
export function describeFace(face: FaceSummary): string {
  const b = face.box;
  return `face: score ${face.score.toFixed(2)} box ${b.x},${b.y},${b.width},${b.height}`;
}

/** "N faces found; using the largest", or null for one face. */
export function describeFaceCount(face: FaceSummary): string | null {
  return face.facesFound > 1 ? `${face.facesFound} faces found; using the largest` : null;
}

export function summarizeFace(face: Face, facesFound: number): FaceSummary {
  const b = face.box;
  return {
    score: Math.round(face.score * 1000) / 1000,
    box: { x: Math.round(b.x), y: Math.round(b.y), width: Math.round(b.width), height: Math.round(b.height) },
    eyeDistance: Math.round(eyeDistance(face) * 10) / 10,
    facesFound,
  };
}

/** An interleaved RGB size² crop → the encoder's [1, 3, size, size] input, x / 127.5 − 1. */
export function encoderInput(img: RgbImage): Float32Array {
  const { width, height, rgb } = img;
  const plane = width * height;
  const out = new Float32Array(3 * plane);
  for (let i = 0; i < plane; i++) {
    out[i] = rgb[3 * i] / 127.5 - 1;
    out[plane + i] = rgb[3 * i + 1] / 127.5 - 1;
    out[2 * plane + i] = rgb[3 * i + 2] / 127.5 - 1;
  }
  return out;
}

/** A rendered image as interleaved 8-bit RGB (the same rounding as the PNG the engine writes). */
export function renderedRgb(image: RenderedImage): RgbImage {
  const rgb = toRgbStrip([image.raw], image.resolution);
  return { width: image.resolution, height: image.resolution, rgb: new Uint8Array(rgb.buffer, rgb.byteOffset, rgb.length) };
}

/** RGB pixels → PNG/WebP/JPEG bytes. */
export async function encodeRgb(img: RgbImage, format: 'png' | 'webp' | 'jpeg' = 'png', quality = 90): Promise<Buffer> {
  const s = sharp(img.rgb, { raw: { width: img.width, height: img.height, channels: 3 } });
  if (format === 'png') return s.png().toBuffer();
  if (format === 'webp') return s.webp({ quality }).toBuffer();
  return s.jpeg({ quality }).toBuffer();
}

/** Two square RGB images side by side at one height (≤ BEFORE_AFTER_MAX, the larger of the two sizes). */
export async function sideBySide(before: RgbImage, after: RgbImage): Promise<RgbImage> {
  const side = Math.min(BEFORE_AFTER_MAX, Math.max(before.width, after.width));
  const scaled = await Promise.all(
    [before, after].map(async (img) => {
      if (img.width === side && img.height === side) return img.rgb;
      const data = await sharp(img.rgb, { raw: { width: img.width, height: img.height, channels: 3 } })
        .resize(side, side, { fit: 'fill', kernel: 'lanczos3' })
        .raw()
        .toBuffer();
      return new Uint8Array(data.buffer, data.byteOffset, data.length);
    }),
  );
  const rgb = new Uint8Array(2 * side * side * 3);
  const row = side * 3;
  for (let y = 0; y < side; y++) {
    rgb.set(scaled[0].subarray(y * row, (y + 1) * row), y * 2 * row);
    rgb.set(scaled[1].subarray(y * row, (y + 1) * row), y * 2 * row + row);
  }
  return { width: 2 * side, height: side, rgb };
}

/**
 * The photo half of the engine around an opened pack. Detector sessions load on first use; the
 * encoder is the pack's (`engine.encode`). Everything here runs on the calling thread: the worker
 * calls it inside its engine thread.
 */
export class PhotoPipeline {
  readonly detector: FaceDetector;
  private readonly ownDetector: boolean;
  private readonly maxPixels: number;
  private readonly minEyeDistance: number;
  /** Encoder runs so far (one per photo inverted). */
  encoderCalls = 0;

  constructor(
    readonly engine: Engine,
    opts: PhotoPipelineOptions = {},
  ) {
    this.ownDetector = !opts.detector;
    this.detector = opts.detector ?? new FaceDetector({ device: opts.device });
    this.maxPixels = opts.maxPixels ?? DEFAULT_MAX_PIXELS;
    this.minEyeDistance = opts.minEyeDistance ?? MIN_EYE_DISTANCE;
  }

  /** The encoder's input side; EngineError `no_encoder` for a pack without one (checked before any photo work). */
  encoderSize(): number {
    const enc = this.engine.summary.encoder;
    if (!enc) {
      throw new EngineError(
        'no_encoder',
        `pack ${this.engine.summary.name} has no image encoder, so it cannot edit photos; add one with: npm run toolkit -- convert-encoder --format e4e --checkpoint e4e_ffhq_encode.pt --out PACK`,
      );
    }
    return enc.inputSize;
  }

  decode(bytes: Uint8Array): Promise<Photo> {
    return decodePhoto(bytes, { maxPixels: this.maxPixels });
  }

  /** Bytes → W+ and what a paste-back needs. Throws not_an_image, too_many_pixels, no_face, face_too_small, no_encoder. */
  async invert(bytes: Uint8Array): Promise<InvertedPhoto> {
    this.encoderSize();
    const t0 = performance.now();
    const photo = await this.decode(bytes);
    const decodeMs = performance.now() - t0;
    const out = await this.invertPhoto(photo);
    out.timings.decodeMs = decodeMs;
    return out;
  }

  /** A decoded photo → W+ (detect, align, encode). */
  async invertPhoto(photo: Photo): Promise<InvertedPhoto> {
    const size = this.encoderSize();
    let t = performance.now();
    const faces = await this.detector.detect(photo);
    if (faces.length === 0) {
      throw new EngineError('no_face', "no face found in the photo: it needs an upright, roughly frontal face at least ~5 % of the photo's longer side");
    }
    checkFaceSize(faces[0], this.minEyeDistance);
    const detectMs = performance.now() - t;
    t = performance.now();
    const aligned = await alignFace(photo, faces[0], { size, minEyeDistance: this.minEyeDistance });
    const alignMs = performance.now() - t;
    t = performance.now();
    this.encoderCalls++;
    const [state] = await this.engine.encode(encoderInput(aligned), 1);
    const encodeMs = performance.now() - t;
    const inversion: PhotoInversion = {
      wplus: state.wplus,
      transform: aligned.transform,
      face: summarizeFace(faces[0], faces.length),
      firstFrameOnly: photo.firstFrameOnly,
      photoWidth: photo.width,
      photoHeight: photo.height,
    };
    return { photo, inversion, aligned: { width: aligned.width, height: aligned.height, rgb: aligned.rgb }, state: { wplus: state.wplus }, timings: { decodeMs: 0, detectMs, alignMs, encodeMs } };
  }

  /**
   * After the edit: the rendered face pasted back into the photo, and the aligned before → after.
   * `aligned` is the crop the encoder saw; without it (a stored inversion) it is cut again from the photo.
   */
  async finish(photo: Photo, transform: AlignTransform, rendered: RenderedImage, aligned?: RgbImage): Promise<FinishedPhoto> {
    const edited = renderedRgb(rendered);
    const before = aligned ?? (await alignWith(photo, transform));
    const [pasted, beforeAfter] = await Promise.all([pasteBack(photo, transform, edited.rgb, edited.width), sideBySide(before, edited)]);
    return { pasted, beforeAfter };
  }

  async close(): Promise<void> {
    if (this.ownDetector) await this.detector.close();
  }
}

/** Opens the pipeline for an engine (the worker's executor and the CLI use this). */
export function createPhotoPipeline(engine: Engine, opts: PhotoPipelineOptions = {}): PhotoPipeline {
  return new PhotoPipeline(engine, opts);
}
