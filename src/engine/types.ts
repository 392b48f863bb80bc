// The engine's public surface: what the CLI, the worker and the benchmarks call.
// The engine knows nothing of chat, queues or platforms.

/** A point to render: W+ rows plus an optional additive StyleSpace offset (from global edits). */
export interface LatentState {
  /** W+ as [numWs * wDim] float32, row-major. */
  wplus: Float32Array;
  /** ΔS over all style channels ([S] float32), or undefined for none. */
  styleDelta?: Float32Array;
}

export type Method = 'global' | 'mapper';

/** One edit applied to a LatentState. */
export interface EditSpec {
  method: Method;
  /** What the user typed, e.g. "curly hair". */
  prompt: string;
  /** Neutral text; when given, prompt and neutral are used verbatim (no pack template). */
  neutral?: string;
  /** Mapper name or slug (mapper method); defaults to the mapper whose name matches the prompt. */
  mapper?: string;
  /**
   * A mapper graph outside the pack (a server's own mapper, absolute path; set by the worker from the job's
   * scope, never by a user). `mapper` then names it in the result info.
   */
  mapperFile?: string;
  /** α. Global: s' = s + α·ΔS. Mapper: ŵ = w + α·0.1·M(w). */
  strength: number;
  /** β in [0, 1], or 'auto' (the official GUI rule). Global method only. */
  threshold?: number | 'auto';
}

export interface EditInfo {
  method: Method;
  /** The texts actually encoded (global). */
  target?: string;
  neutral?: string;
  /** Mapper slug used (mapper). */
  mapper?: string;
  strength: number;
  /** β used (global), after resolving 'auto'. */
  threshold?: number;
  /** Number of style channels moved (global). */
  channels?: number;
}

export interface RenderedImage {
  /** Raw generator output [3, R, R] float32, unclamped. */
  raw: Float32Array;
  resolution: number;
}

export interface PackSummary {
  name: string;
  dir: string;
  untrained: boolean;
  resolution: number;
  wDim: number;
  numWs: number;
  styleChannels: number;
  convChannels: number;
  /** In a server view (PackCatalog.view), `server` marks that server's own mappers. */
  mappers: { name: string; slug: string; server?: boolean }[];
  /** Whether the pack carries ArcFace weights (identity/, for the ID loss of latent optimization); unknown when absent. */
  identity?: boolean;
  /** The image encoder, when the pack has one: `encode` takes [N, 3, inputSize, inputSize]. */
  encoder?: { inputSize: number; format: string };
  defaults: {
    neutral: string;
    targetTemplate: string;
    strength: number;
    threshold: number | null;
    /** Automatic β keeps more than this many channels: 20 for FFHQ faces, 100 for other datasets in the official GUI. */
    autoThresholdChannels?: number;
  };
}

/** Largest |α| accepted (the official sliders span −10…10; −15…25 in the Tk GUI). Here, not in
 * index.ts, so the bot process can check settings against it without loading onnxruntime. */
export const MAX_STRENGTH = 50;

/** The one strength rule (engine, CLI, server settings, commands): why `strength` is not usable, or null. */
export function strengthProblem(strength: number, name = 'strength'): string | null {
  if (typeof strength !== 'number' || !Number.isFinite(strength)) return `${name} must be a finite number, got ${strength}`;
  if (Math.abs(strength) > MAX_STRENGTH) return `${name} ${strength} is out of range: use −${MAX_STRENGTH}…${MAX_STRENGTH} (4 is a typical edit; negative moves away from the text)`;
  return null;
}

/** An error meant for the user: one line, actionable. `code` is stable for programs and metrics. */
export class EngineError extends Error {
  constructor(
    public readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'EngineError';
  }
}

/**
 * An opened model pack. Implemented in src/engine/index.ts (`openPack(dir, { device })`).
 * Batched methods take arrays and run one model call per stage for the whole batch.
 */
export interface Engine {
  readonly summary: PackSummary;
  /** W+ for each seed: z = numpy RandomState(seed).randn(zDim), mapped, truncated toward w_avg by ψ (default 1). */
  sample(seeds: number[], truncation?: number): Promise<LatentState[]>;
  /** Applies specs[i] to states[i]. Text directions are cached per (target, neutral). */
  edit(states: LatentState[], specs: EditSpec[]): Promise<{ state: LatentState; info: EditInfo }[]>;
  /**
   * W+ of n aligned faces (one encoder call): `images` is [n, 3, S, S] float32, RGB in [-1, 1]
   * (x / 127.5 − 1), S = summary.encoder.inputSize. EngineError `no_encoder` without one.
   */
  encode(images: Float32Array, n: number): Promise<LatentState[]>;
  /** One synthesis call for the batch. */
  render(states: LatentState[]): Promise<RenderedImage[]>;
  close(): Promise<void>;
}
