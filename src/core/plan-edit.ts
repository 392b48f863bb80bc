// The rules of one edit, in one place: `/styleclip` and the ➕/➖ nudges both plan through here, so a rule an
// admin sets (allowed channels, blocked words, strength bounds) holds for every way an edit is asked for.
import type { PackSummary } from '../engine/types.ts';
import type { JobSpec } from '../jobs/types.ts';
import { findMapper } from '../engine/pack.ts';
import { strengthProblem } from '../engine/types.ts';
import type { MethodSetting, ServerSettings } from '../state/settings.ts';
import { planOptimize } from './plan-optimize.ts';

export interface EditRequest {
  prompt: string;
  /** Neutral text, used verbatim with the prompt (global method). */
  neutral?: string;
  /** Asked for by the user; otherwise the server's method setting. `optimize` only when asked for. */
  method?: MethodSetting | 'optimize';
  /** Asked for by the user; otherwise the server's default, else the pack's. */
  strength?: number;
  /** Asked for by the user; otherwise the server's, else the pack's, else automatic. */
  threshold?: number | 'auto';
  /** Optimization steps (method optimize); otherwise min(300, the server's optimize-steps-max). */
  steps?: number;
  /** Pull toward the start (method optimize): set by ➕/➖ on an optimize result; otherwise the server's optimize-l2. */
  l2Lambda?: number;
}

export type EditPlan = { spec: JobSpec } | { refusal: string };

/** Whole-word, case-insensitive match of any blocked word or phrase. */
export function blockedWordIn(text: string, blocked: string[]): string | undefined {
  const lower = ` ${text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ')} `;
  return blocked.find((w) => w.trim() && lower.includes(` ${w.toLowerCase().trim()} `));
}

/** The edit a request makes in `channelId` on this server and pack, or why it may not run. */
export function planEdit(settings: ServerSettings, pack: PackSummary, channelId: string, req: EditRequest): EditPlan {
  if (settings.channels.length && !settings.channels.includes(channelId)) {
    return { refusal: `StyleCLIP is not enabled in this channel. Ask an admin, or use one of: ${settings.channels.join(', ')}.` };
  }
  if (blockedWordIn(`${req.prompt} ${req.neutral ?? ''}`, settings.blockedWords)) {
    return { refusal: 'Your prompt contains a word that is blocked on this server.' };
  }
  if (req.method === 'optimize') return planOptimize(settings, pack, req);
  if (req.steps !== undefined || req.l2Lambda !== undefined) return { refusal: 'steps applies to method:optimize only.' };
  const mapper = findMapper(pack.mappers, req.prompt);
  let method = req.method ?? settings.method;
  if (method === 'auto') method = mapper && req.threshold === undefined && !req.neutral ? 'mapper' : 'global';
  if (method === 'mapper' && !mapper) {
    const names = pack.mappers.map((m) => m.name);
    return {
      refusal: `Pack "${pack.name}" has no mapper for "${req.prompt}". ${names.length ? `Mappers: ${names.join(', ')}.` : 'It has none; use method:global.'}`,
    };
  }
  if (method === 'mapper' && (req.threshold !== undefined || req.neutral)) {
    return { refusal: 'threshold and neutral apply to the global method only.' };
  }

  const fallback = method === 'mapper' ? 1 : pack.defaults.strength;
  const strength = req.strength ?? Math.min(settings.strengthMax, Math.max(settings.strengthMin, settings.strengthDefault ?? fallback));
  const problem = strengthProblem(strength);
  if (problem) return { refusal: `${problem}.` };
  if (strength < settings.strengthMin || strength > settings.strengthMax) {
    return { refusal: `strength ${strength} is outside this server's range ${settings.strengthMin} to ${settings.strengthMax}.` };
  }

  if (method === 'mapper') return { spec: { method: 'mapper', prompt: req.prompt, mapper: mapper!.slug, strength } };
  const threshold = req.threshold ?? settings.threshold ?? pack.defaults.threshold ?? 'auto';
  return { spec: { method: 'global', prompt: req.prompt, strength, threshold, ...(req.neutral ? { neutral: req.neutral } : {}) } };
}
