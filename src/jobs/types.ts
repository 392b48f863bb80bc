// What a job carries from the bot to a worker, and what comes back. No secrets in here: it is stored as plain text.
import type { EditInfo, EditSpec } from '../engine/types.ts';

export type Platform = 'discord' | 'slack' | 'playground';

/** Where a job's result goes; stored with the job so any bot instance can deliver it. */
export interface ReplyTarget {
  platform: Platform;
  channelId: string;
  /** Platform message the adapter will edit (Discord message id, Slack ts, playground message id). */
  messageId?: string;
  /** Slack thread ts, Discord thread id… */
  threadId?: string;
}

export type JobStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled';

/** A job in one of these states will not change again. */
export function isFinal(status: JobStatus): boolean {
  return status === 'completed' || status === 'failed' || status === 'cancelled';
}

/**
 * Latent optimization (the official `run_optimization.py` loop): needs gradients, so it runs on PyTorch in the
 * toolkit, on the gradient lane that only workers with PyTorch take. Not an engine EditSpec: the engine can't run it.
 */
export interface OptimizeSpec {
  method: 'optimize';
  /** Used raw, as the official code (no templates). */
  prompt: string;
  steps: number;
  /** Weight of Σ(w − w₀)²: the pull toward the start (➕ divides it, ➖ multiplies it). */
  l2Lambda: number;
  /** Weight of the ArcFace ID loss (needs identity/ in the pack). */
  idLambda: number;
}

/** Which W+ rows a trained mapper edits (the official coach's --no_coarse/medium/fine_mapper). */
export interface MapperLevels {
  coarse: boolean;
  medium: boolean;
  fine: boolean;
}

/**
 * Training a latent mapper for one server (an admin's `/styleclip-admin train-mapper`): the official coach on
 * PyTorch, on the training lane. The mapper goes into the server's own mapper folder, beside the pack.
 */
export interface TrainMapperSpec {
  method: 'train-mapper';
  /** Used raw, as the official coach (no templates); also the mapper's name. */
  prompt: string;
  steps: number;
  levels: MapperLevels;
  /** Weight of the ArcFace ID loss: the official 0.1, or 0 when the pack has no ArcFace weights. */
  idLambda: number;
}

/** What a job asks a worker to do. */
export type JobSpec = EditSpec | OptimizeSpec | TrainMapperSpec;

/**
 * An optimize job reports this progress when its PyTorch process has started; every later report comes after
 * the worker stored a new preview image (keys.preview), so the bot can show one.
 */
export const OPTIMIZE_START_PROGRESS = 5;

export const isOptimize = (spec: JobSpec): spec is OptimizeSpec => spec.method === 'optimize';
export const isTraining = (spec: JobSpec): spec is TrainMapperSpec => spec.method === 'train-mapper';

/** Optimization runs on W+ from a seed or a stored result; a photo is inverted by an edit first. */
export const PHOTO_NOT_OPTIMIZED =
  'method:optimize starts from a generated face or a previous result, not straight from a photo: edit the photo first, then optimize that result (source:).';

/** What an optimization did, for the caption. */
export interface OptimizeInfo {
  method: 'optimize';
  steps: number;
  l2Lambda: number;
  idLambda: number;
  /** Losses at the result. */
  loss: number;
  clip: number;
  l2: number;
  id: number;
  seconds: number;
  stepsPerS: number;
  device: string;
}

/** What a mapper training did, for the caption. */
export interface TrainInfo {
  method: 'train-mapper';
  /** The mapper's name and slug (now in the server's mappers). */
  name: string;
  slug: string;
  steps: number;
  /** The step a rerun continued from (a worker stopped or died before); 0 when it ran in one go. */
  resumedAt: number;
  idLambda: number;
  /** Losses at the last step. */
  loss: number;
  clip: number;
  seconds: number;
  stepsPerS: number | null;
  device: string;
}

/** How far a running gradient job is, for its progress message (keys.progress; the percent goes through the queue). */
export interface StepProgress {
  step: number;
  steps: number;
  loss: number;
  clip: number;
  /** This report came with a new preview image (keys.preview). */
  preview?: true;
}

/**
 * Where an edit starts: a seed's face, a stored result, or a user's photo. A photo's bytes live in the
 * store under `key` (keys.photo, with the result TTL), never in the job data.
 */
export type JobSource = { kind: 'seed'; seed: number } | { kind: 'result'; jobId: string } | { kind: 'photo'; key: string };

/** What a photo result says about its photo (no pixel of it): shown in the caption, used by follow-ups. */
export interface PhotoResultInfo {
  /** Store key of the photo (keys.photo) and its inversion (keys.photoInversion). */
  key: string;
  score: number;
  box: { x: number; y: number; width: number; height: number };
  facesFound: number;
  /** An animation or multi-page file: its first frame was used. */
  firstFrameOnly: boolean;
  /** This job ran the encoder (false: it reused the photo's stored inversion). */
  inverted: boolean;
}

export interface EditJobData {
  jobId: string;
  platform: Platform;
  /** `<platform>:<serverId or dm>`: the scope whose settings and caps apply. */
  scope: string;
  requesterId: string;
  target: ReplyTarget;
  /** Pack name (the worker resolves it to a folder). */
  pack: string;
  spec: JobSpec;
  source: JobSource;
  submittedAt: number;
  /** The job this one nudges (➕/➖). */
  parentJobId?: string;
  /**
   * Lower runs first (≥ 1, default 1; equal priorities in order of arrival). The core gives a user's
   * n-th job in flight priority n, so one user's burst does not hold up everyone else.
   */
  priority?: number;
}

export interface ResultTimings {
  /** Submission until a worker picked the job. */
  queueMs: number;
  /** Engine time of the batch (sample + edit + render). */
  engineMs: number;
  encodeMs: number;
  batchSize: number;
}

export interface ResultMeta {
  jobId: string;
  pack: string;
  untrained: boolean;
  resolution: number;
  info: EditInfo | OptimizeInfo | TrainInfo;
  source: JobSource;
  /** Seed of the face the edit started from (inherited through follow-up edits). */
  seed?: number;
  /** Style channel count, so follow-ups can read the stored ΔS. */
  styleChannels: number;
  /** Set for an edit of a user's photo (started from it, or from an earlier edit of it). */
  photo?: PhotoResultInfo;
  timings: ResultTimings;
  completedAt: number;
}

/** Events the queue reports about a job; the bot turns them into JobUpdates. */
export type QueueEvent =
  | { type: 'active'; jobId: string }
  | { type: 'progress'; jobId: string; progress: number }
  | { type: 'completed'; jobId: string }
  | { type: 'failed'; jobId: string; reason: string };

/**
 * Thrown by a job handler when the job may not start yet (its user or server is at its running-jobs cap):
 * the job goes back to the queue for `delayMs`, keeping its place in the priority order and using no try.
 */
export class PostponeJob extends Error {
  constructor(
    message: string,
    public readonly delayMs: number,
  ) {
    super(message);
    this.name = 'PostponeJob';
  }
}

/** A failure that retrying will not fix (bad prompt, expired source…): its message goes to the user. */
export class PermanentJobError extends Error {
  constructor(
    public readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'PermanentJobError';
  }
}

export const CANCELLED_MESSAGE = 'Cancelled.';
