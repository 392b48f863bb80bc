// The rules of an admin's mapper training (`/styleclip-admin train-mapper`), beside plan-edit.ts: the prompt
// (not empty, no blocked word, not a mapper the pack already has), steps within the server's bound, which W+
// levels, and the ID loss when the pack can compute it. One training per server is held at submission.
import { findMapper } from '../engine/pack.ts';
import type { PackSummary } from '../engine/types.ts';
import type { MapperLevels, TrainMapperSpec } from '../jobs/types.ts';
import type { ServerSettings } from '../state/settings.ts';
import { blockedWordIn } from './plan-edit.ts';

export interface TrainRequest {
  prompt: string;
  steps?: number;
  /** "all" (default), or level names joined by + or commas: "coarse+medium". */
  levels?: string;
}

/** Steps when the admin gives none (capped by the server's train-steps-max); the official schedule runs 50000. */
export const DEFAULT_TRAIN_STEPS = 10_000;
/** The official coach's ID loss weight, used when the pack has ArcFace weights. */
export const OFFICIAL_TRAIN_ID_LAMBDA = 0.1;

const LEVELS = ['coarse', 'medium', 'fine'] as const;

/** The level choices offered in the command (Discord shows them as a list). */
export const LEVEL_CHOICES = ['all', 'coarse+medium', 'medium+fine', 'coarse', 'medium', 'fine', 'coarse+fine'];

export function parseLevels(text: string | undefined): MapperLevels | string {
  const words = (text ?? 'all').toLowerCase().split(/[\s+,]+/).filter(Boolean);
  if (words.length === 0 || (words.length === 1 && words[0] === 'all')) return { coarse: true, medium: true, fine: true };
  const unknown = words.find((w) => !(LEVELS as readonly string[]).includes(w));
  if (unknown) return `levels must be "all" or coarse, medium, fine joined by + (e.g. coarse+medium), got "${text}".`;
  return { coarse: words.includes('coarse'), medium: words.includes('medium'), fine: words.includes('fine') };
}

export function planTraining(settings: ServerSettings, pack: PackSummary, req: TrainRequest): { spec: TrainMapperSpec } | { refusal: string } {
  const prompt = req.prompt.trim().replace(/\s+/g, ' ');
  if (!/[\p{L}\p{N}]/u.test(prompt)) return { refusal: 'Give the text the mapper should follow, e.g. "pixie cut".' };
  if (!/[a-z0-9]/i.test(prompt)) return { refusal: 'The prompt needs at least one letter a–z or digit (it names the mapper\'s file).' };
  if (blockedWordIn(prompt, settings.blockedWords)) return { refusal: 'The prompt contains a word that is blocked on this server.' };
  const existing = findMapper(pack.mappers, prompt);
  if (existing && !existing.server) {
    return { refusal: `Pack "${pack.name}" already has a mapper for "${existing.name}"; /styleclip ${existing.name} uses it.` };
  }
  const max = settings.trainStepsMax;
  const steps = req.steps ?? Math.min(DEFAULT_TRAIN_STEPS, max);
  if (!Number.isInteger(steps) || steps < 1 || steps > max) {
    return { refusal: `steps must be a whole number from 1 to ${max} on this server (train-steps-max), got ${steps}.` };
  }
  const levels = parseLevels(req.levels);
  if (typeof levels === 'string') return { refusal: levels };
  const idLambda = pack.identity ? OFFICIAL_TRAIN_ID_LAMBDA : 0;
  return { spec: { method: 'train-mapper', prompt, steps, levels, idLambda } };
}
