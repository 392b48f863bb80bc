// MediaPipe BlazeFace (short-range "front" 128² and full-range-ish "back" 256² models) over
// onnxruntime-node: letterbox → NHWC float in [-1, 1] → SSD anchor decode → weighted NMS → photo pixels.
// Plain classes and functions: safe to run in the engine's worker thread.
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { LazySession, ort, type Device } from '../session.ts';
import { EngineError } from '../types.ts';
import type { Photo } from './decode.ts';

export interface Point {
  x: number;
  y: number;
}

/**
 * BlazeFace's six keypoints, in photo pixels (continuous coordinates: pixel (i, j) covers
 * [i, i+1) × [j, j+1)). MediaPipe names eyes and ears from the subject's side: `rightEye` is the
 * subject's right eye, which lies on the image's left in an ordinary (unmirrored) photo.
 */
export interface Keypoints {
  rightEye: Point;
  leftEye: Point;
  noseTip: Point;
  mouth: Point;
  rightEar: Point;
  leftEar: Point;
}

export interface Face {
  /** Detector confidence in (0, 1). */
  score: number;
  /** Photo pixels, top-left corner and size. */
  box: { x: number; y: number; width: number; height: number };
  keypoints: Keypoints;
  /** Which model found it. */
  model: BlazeFaceModel;
}

export type BlazeFaceModel = 'front' | 'back';

const MODEL_DIR = fileURLToPath(new URL('../../../models/detector/blazeface/', import.meta.url));
export const BLAZEFACE_FILES: Record<BlazeFaceModel, string> = {
  front: `${MODEL_DIR}face_detection_front_128x128_barracuda.onnx`,
  back: `${MODEL_DIR}face_detection_back_256x256_barracuda.onnx`,
};

/**
 * Thresholds from measurements on real photos (docs/photos.md): a candidate needs 0.3 from either
 * model on the whole photo; the front model, re-run on a square around it, must then give ≥ 0.75.
 */
export const CANDIDATE_SCORE = 0.3;
export const MIN_SCORE = 0.75;
/** Refinement crops, as multiples of the candidate's box: the front model is most sure of faces that fill 1/3–1/2 of its input. */
export const REFINE_CROPS = [2, 3];
/** Detections overlapping more than this (IoU) are merged, as MediaPipe's weighted NMS does. */
export const NMS_IOU = 0.3;

export interface DetectorOptions {
  /** Score a refined face needs (default MIN_SCORE). */
  minScore?: number;
  /** Score a first-pass candidate needs (default CANDIDATE_SCORE). */
  candidateScore?: number;
  /** Candidates refined at most, best first (default 16). */
  maxCandidates?: number;
  device?: Device;
  /** CPU intra-op threads per session (default 1). */
  threads?: number;
  /** Other ONNX files with BlazeFace's inputs and outputs in place of the shipped ones. */
  files?: Partial<Record<BlazeFaceModel, string>>;
}

/** One decoded candidate in model-input pixels: [cx, cy, w, h, kx0, ky0, …, kx5, ky5]. */
export interface RawDetection {
  score: number;
  geom: Float64Array;
}

/**
 * Anchor centres (model-input pixels) for an SSD head with `count` outputs of `perCell` anchors
 * on a square grid: cell (col, row) → ((col + 0.5)·stride, (row + 0.5)·stride), anchors of one
 * cell adjacent, row-major. Both BlazeFace models use 2 anchors/cell on the fine grid, 6 on the coarse.
 */
export function anchorCentres(count: number, perCell: number, inputSize: number): Float64Array {
  const cells = Math.round(Math.sqrt(count / perCell));
  if (cells * cells * perCell !== count) throw new Error(`${count} anchors do not fill a square grid of ${perCell} per cell`);
  const stride = inputSize / cells;
  const out = new Float64Array(count * 2);
  let k = 0;
  for (let row = 0; row < cells; row++) {
    for (let col = 0; col < cells; col++) {
      for (let a = 0; a < perCell; a++, k++) {
        out[2 * k] = (col + 0.5) * stride;
        out[2 * k + 1] = (row + 0.5) * stride;
      }
    }
  }
  return out;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-Math.max(-100, Math.min(100, x))));

/** Candidates above `minScore` from one head: regressors are offsets in input pixels from the anchor centre. */
export function decodeHead(scores: Float32Array, regressors: Float32Array, anchors: Float64Array, minScore: number): RawDetection[] {
  const out: RawDetection[] = [];
  const n = scores.length;
  for (let i = 0; i < n; i++) {
    const score = sigmoid(scores[i]);
    if (score < minScore) continue;
    const ax = anchors[2 * i];
    const ay = anchors[2 * i + 1];
    const r = i * 16;
    const geom = new Float64Array(16);
    geom[0] = ax + regressors[r];
    geom[1] = ay + regressors[r + 1];
    geom[2] = regressors[r + 2];
    geom[3] = regressors[r + 3];
    for (let k = 4; k < 16; k += 2) {
      geom[k] = ax + regressors[r + k];
      geom[k + 1] = ay + regressors[r + k + 1];
    }
    out.push({ score, geom });
  }
  return out;
}

function iou(a: Float64Array, b: Float64Array): number {
  const ix = Math.min(a[0] + a[2] / 2, b[0] + b[2] / 2) - Math.max(a[0] - a[2] / 2, b[0] - b[2] / 2);
  const iy = Math.min(a[1] + a[3] / 2, b[1] + b[3] / 2) - Math.max(a[1] - a[3] / 2, b[1] - b[3] / 2);
  if (ix <= 0 || iy <= 0) return 0;
  const inter = ix * iy;
  return inter / (a[2] * a[3] + b[2] * b[3] - inter);
}

/**
 * Weighted NMS (MediaPipe's "WEIGHTED" suppression): the best remaining candidate takes every
 * candidate overlapping it by ≥ `threshold` IoU; the merged geometry is their score-weighted mean,
 * the score the best one's. Averaging many anchors steadies the keypoints.
 */
export function weightedNms(dets: RawDetection[], threshold = NMS_IOU): RawDetection[] {
  const rest = [...dets].sort((a, b) => b.score - a.score);
  const out: RawDetection[] = [];
  while (rest.length > 0) {
    const best = rest[0];
    const geom = new Float64Array(16);
    let total = 0;
    for (let i = rest.length - 1; i >= 0; i--) {
      if (i > 0 && iou(best.geom, rest[i].geom) < threshold) continue;
      const d = rest[i];
      for (let k = 0; k < 16; k++) geom[k] += d.score * d.geom[k];
      total += d.score;
      rest.splice(i, 1);
    }
    for (let k = 0; k < 16; k++) geom[k] /= total;
    out.push({ score: best.score, geom });
  }
  return out;
}

/**
 * How a square region of the photo sits in the model's input: photo x = ox + input x / sx (same
 * for y). The region may reach outside the photo; that part of the input is black padding.
 */
export interface View {
  size: number;
  ox: number;
  oy: number;
  sx: number;
  sy: number;
}

/** A square region of the photo in photo pixels (integers; may extend past the edges). */
export interface Region {
  left: number;
  top: number;
  side: number;
}

/** The square that letterboxes the whole photo (centred, as MediaPipe letterboxes). */
export function fullRegion(width: number, height: number): Region {
  const side = Math.max(width, height);
  return { left: (width - side) >> 1, top: (height - side) >> 1, side };
}

/** A region of the photo as a size² NHWC float tensor in [-1, 1]; padding is black (-1), as in MediaPipe. */
export async function regionTensor(photo: Photo, region: Region, size: number): Promise<{ tensor: Float32Array; view: View }> {
  const x0 = Math.max(0, region.left);
  const y0 = Math.max(0, region.top);
  const x1 = Math.min(photo.width, region.left + region.side);
  const y1 = Math.min(photo.height, region.top + region.side);
  const s = size / region.side;
  const tensor = new Float32Array(size * size * 3).fill(-1);
  if (x1 <= x0 || y1 <= y0) return { tensor, view: { size, ox: region.left, oy: region.top, sx: s, sy: s } };
  const dx = Math.min(size - 1, Math.round((x0 - region.left) * s));
  const dy = Math.min(size - 1, Math.round((y0 - region.top) * s));
  const w = Math.max(1, Math.min(size - dx, Math.round((x1 - x0) * s)));
  const h = Math.max(1, Math.min(size - dy, Math.round((y1 - y0) * s)));
  let img = sharp(photo.rgb, { raw: { width: photo.width, height: photo.height, channels: 3 } });
  if (x0 > 0 || y0 > 0 || x1 < photo.width || y1 < photo.height) img = img.extract({ left: x0, top: y0, width: x1 - x0, height: y1 - y0 });
  const small = await img.resize(w, h, { fit: 'fill' }).raw().toBuffer();
  for (let y = 0; y < h; y++) {
    let src = y * w * 3;
    let dst = ((y + dy) * size + dx) * 3;
    for (let x = 0; x < w * 3; x++) tensor[dst++] = small[src++] / 127.5 - 1;
  }
  // Exact for the resized part: its w input pixels span the x1 − x0 photo pixels.
  const sx = w / (x1 - x0);
  const sy = h / (y1 - y0);
  return { tensor, view: { size, ox: x0 - dx / sx, oy: y0 - dy / sy, sx, sy } };
}

/** A detection in model-input pixels → a Face in photo pixels. */
export function toFace(d: RawDetection, v: View, model: BlazeFaceModel): Face {
  const g = d.geom;
  const px = (x: number) => v.ox + x / v.sx;
  const py = (y: number) => v.oy + y / v.sy;
  const pt = (k: number): Point => ({ x: px(g[4 + 2 * k]), y: py(g[5 + 2 * k]) });
  const w = g[2] / v.sx;
  const h = g[3] / v.sy;
  return {
    score: d.score,
    box: { x: px(g[0]) - w / 2, y: py(g[1]) - h / 2, width: w, height: h },
    keypoints: { rightEye: pt(0), leftEye: pt(1), noseTip: pt(2), mouth: pt(3), rightEar: pt(4), leftEar: pt(5) },
    model,
  };
}

interface Head {
  session: LazySession;
  size: number;
  anchors: [Float64Array, Float64Array] | null;
}

/**
 * The engine's face detector. `detect(photo)` finds candidates with both models on the whole photo
 * (back: faces down to ~4 % of the long side; front: faces that fill the frame), then re-runs the
 * front model on squares around each one: that score decides, and its keypoints are the answer.
 * Sessions load on first use; `close()` releases them.
 */
export class FaceDetector {
  private readonly heads = new Map<BlazeFaceModel, Head>();
  private readonly minScore: number;
  private readonly candidateScore: number;
  private readonly maxCandidates: number;

  constructor(opts: DetectorOptions = {}) {
    // One intra-op thread by default: the graphs are tiny, and more threads measured 2–3× slower here.
    const sessionOpts = { device: opts.device ?? 'cpu', threads: opts.threads ?? 1 };
    for (const m of ['front', 'back'] as const) {
      this.heads.set(m, { session: new LazySession(opts.files?.[m] ?? BLAZEFACE_FILES[m], sessionOpts), size: 0, anchors: null });
    }
    this.minScore = opts.minScore ?? MIN_SCORE;
    this.candidateScore = opts.candidateScore ?? CANDIDATE_SCORE;
    this.maxCandidates = opts.maxCandidates ?? 16;
  }

  /** Every face found, largest box first; [] when none. */
  async detect(photo: Photo): Promise<Face[]> {
    const full = fullRegion(photo.width, photo.height);
    const candidates = nmsFaces([
      ...(await this.detectWith('back', photo, this.candidateScore, full)),
      ...(await this.detectWith('front', photo, this.candidateScore, full)),
    ]).slice(0, this.maxCandidates);
    const found: Face[] = [];
    for (const c of candidates) {
      const f = await this.refine(photo, c);
      if (f && f.score >= this.minScore) found.push(f);
    }
    return nmsFaces(found).sort((a, b) => b.box.width * b.box.height - a.box.width * a.box.height);
  }

  /** The front model on squares around a candidate; the score-weighted mean of what it finds near the centre. */
  async refine(photo: Photo, c: Face): Promise<Face | null> {
    const cx = c.box.x + c.box.width / 2;
    const cy = c.box.y + c.box.height / 2;
    const hits: Face[] = [];
    for (const k of REFINE_CROPS) {
      const side = Math.max(8, Math.round(k * Math.max(c.box.width, c.box.height)));
      const region = { left: Math.round(cx - side / 2), top: Math.round(cy - side / 2), side };
      const near = (await this.detectWith('front', photo, 0.05, region))
        .filter((f) => Math.hypot(f.box.x + f.box.width / 2 - cx, f.box.y + f.box.height / 2 - cy) < side / 4)
        .sort((a, b) => b.score - a.score)[0];
      if (near) hits.push(near);
    }
    if (hits.length === 0) return null;
    const total = hits.reduce((t, h) => t + h.score, 0);
    const mean = (get: (f: Face) => number) => hits.reduce((t, h) => t + h.score * get(h), 0) / total;
    const pt = (k: keyof Keypoints): Point => ({ x: mean((f) => f.keypoints[k].x), y: mean((f) => f.keypoints[k].y) });
    return {
      // A crop that finds nothing counts as 0: both views must agree.
      score: total / REFINE_CROPS.length,
      box: { x: mean((f) => f.box.x), y: mean((f) => f.box.y), width: mean((f) => f.box.width), height: mean((f) => f.box.height) },
      keypoints: { rightEye: pt('rightEye'), leftEye: pt('leftEye'), noseTip: pt('noseTip'), mouth: pt('mouth'), rightEar: pt('rightEar'), leftEar: pt('leftEar') },
      model: 'front',
    };
  }

  /** One model, one pass over a square region (default: the whole photo letterboxed); plain NMS-merged detections. */
  async detectWith(model: BlazeFaceModel, photo: Photo, minScore: number, region = fullRegion(photo.width, photo.height)): Promise<Face[]> {
    const head = this.heads.get(model)!;
    const session = await head.session.get();
    if (!head.anchors) {
      const meta = session.inputMetadata[0];
      const shape = meta?.isTensor ? meta.shape : [];
      if (shape.length !== 4 || shape[1] !== shape[2] || shape[3] !== 3 || typeof shape[1] !== 'number') {
        throw new EngineError('bad_detector', `${head.session.path} does not take a square NHWC RGB image (input shape [${shape.join(', ')}])`);
      }
      head.size = shape[1];
      head.anchors = [anchorCentres(512, 2, head.size), anchorCentres(384, 6, head.size)];
    }
    const { tensor, view } = await regionTensor(photo, region, head.size);
    const out = await session.run({ [session.inputNames[0]]: new ort.Tensor('float32', tensor, [1, head.size, head.size, 3]) });
    // Scores and regressors of the fine (512 anchors) and coarse (384) heads, told apart by size.
    const bySize = new Map(session.outputNames.map((n) => [out[n].data.length, out[n].data as Float32Array]));
    const [s0, s1, r0, r1] = [512, 384, 512 * 16, 384 * 16].map((n) => bySize.get(n));
    if (!s0 || !s1 || !r0 || !r1) {
      throw new EngineError('bad_detector', `${head.session.path} does not have BlazeFace's outputs (512 + 384 anchors, 16 values each)`);
    }
    const raw = [...decodeHead(s0, r0, head.anchors[0], minScore), ...decodeHead(s1, r1, head.anchors[1], minScore)];
    return weightedNms(raw).map((d) => toFace(d, view, model));
  }

  async close(): Promise<void> {
    await Promise.all([...this.heads.values()].map((h) => h.session.release()));
  }
}

/** Plain NMS over faces: the best-scoring of overlapping ones stays. */
function nmsFaces(faces: Face[]): Face[] {
  const geom = (f: Face) => Float64Array.of(f.box.x + f.box.width / 2, f.box.y + f.box.height / 2, f.box.width, f.box.height);
  const kept: Face[] = [];
  for (const f of [...faces].sort((a, b) => b.score - a.score)) if (!kept.some((k) => iou(geom(k), geom(f)) >= NMS_IOU)) kept.push(f);
  return kept;
}
