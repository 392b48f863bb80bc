// The rules of a latent optimization (`/styleclip … method:optimize`), beside plan-edit.ts which calls it after
// the rules every edit shares (channels, blocked words): whether the server allows it, its steps within the
// server's bound, its λ's from the server's settings, and the L2 pull a ➕/➖ nudge moves.
import type { PackSummary } from '../engine/types.ts';
import type { OptimizeSpec } from '../jobs/types.ts';
import { OPTIMIZE_LAMBDA_MAX, type ServerSettings } from '../state/settings.ts';

/** The parts of an edit request that matter to an optimization (plan-edit.ts's EditRequest fits). */
export interface OptimizeRequest {
  prompt: string;
  neutral?: string;
  strength?: number;
  threshold?: number | 'auto';
  steps?: number;
  l2Lambda?: number;
}

/** The official loop's step count: the default, unless the server allows fewer. */
export const OFFICIAL_STEPS = 300;

/**
 * ➕ (stronger edit) divides the L2 pull toward the start by this, ➖ (weaker) multiplies it: the same factor
 * as the strength nudges of the other methods, applied to the one knob the official loop has for "how far".
 */
export const L2_NUDGE_FACTOR = 1.5;

const round4 = (n: number) => Number(n.toPrecision(4));

export function nudgedL2(l2: number, direction: 'stronger' | 'weaker'): number {
  return round4(direction === 'stronger' ? l2 / L2_NUDGE_FACTOR : l2 * L2_NUDGE_FACTOR);
}

export function planOptimize(settings: ServerSettings, pack: PackSummary, req: OptimizeRequest): { spec: OptimizeSpec } | { refusal: string } {
  if (!settings.optimize) {
    return { refusal: 'method:optimize is turned off on this server (an admin can turn it on with /styleclip-admin set optimize on).' };
  }
  if (req.strength !== undefined || req.threshold !== undefined || req.neutral) {
    return { refusal: 'strength, threshold and neutral do not apply to method:optimize (use steps:; ➕/➖ on its result move it further or less far).' };
  }
  const steps = req.steps ?? Math.min(OFFICIAL_STEPS, settings.optimizeStepsMax);
  if (!Number.isInteger(steps) || steps < 1 || steps > settings.optimizeStepsMax) {
    return { refusal: `steps must be a whole number from 1 to ${settings.optimizeStepsMax} on this server, got ${steps}.` };
  }
  const l2Lambda = req.l2Lambda ?? settings.optimizeL2;
  if (!Number.isFinite(l2Lambda) || l2Lambda < 0 || l2Lambda > OPTIMIZE_LAMBDA_MAX) {
    return { refusal: `The L2 weight ${l2Lambda} is outside 0 to ${OPTIMIZE_LAMBDA_MAX}.` };
  }
  const idLambda = settings.optimizeId;
  if (idLambda > 0 && pack.identity === false) {
    return { refusal: `This server's optimize-id is ${idLambda}, but pack "${pack.name}" has no ArcFace weights (an admin can set optimize-id 0, or add them with convert-identity).` };
  }
  const spec: OptimizeSpec = { method: 'optimize', prompt: req.prompt, steps, l2Lambda, idLambda };
  return { spec };
}
