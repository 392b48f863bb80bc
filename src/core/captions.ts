// What users read about an edit: the one-line description in queued replies, the progress line, the result
// caption, and the strength a ➕/➖ nudge asks for.
import type { EditJobData, JobSpec, MapperLevels, OptimizeInfo, ResultMeta, StepProgress, TrainInfo } from '../jobs/types.ts';

const round2 = (n: number) => Math.round(n * 100) / 100;

/** "coarse+medium", or "all levels". */
export function describeLevels(levels: MapperLevels): string {
  const on = (['coarse', 'medium', 'fine'] as const).filter((l) => levels[l]);
  return on.length === 3 ? 'all levels' : on.join('+');
}

/** One line describing an edit, for queued replies and result captions. */
export function describeSpec(spec: JobSpec): string {
  if (spec.method === 'optimize') return `**${spec.prompt}** · optimize · ${spec.steps} steps · l2 ${spec.l2Lambda}${spec.idLambda ? ` · id ${spec.idLambda}` : ''}`;
  if (spec.method === 'train-mapper') return `mapper training **${spec.prompt}** · ${spec.steps} steps · ${describeLevels(spec.levels)}`;
  const parts = [`**${spec.prompt}**`, spec.method, `strength ${round2(spec.strength)}`];
  if (spec.method === 'global' && spec.threshold !== undefined) parts.push(`threshold ${spec.threshold}`);
  return parts.join(' · ');
}

/** A running job's progress line; a gradient job's names its step and losses once it reports them. */
export function describeProgress(spec: JobSpec, percent: number, step: StepProgress | null): string {
  if (!step) return `Running ${describeSpec(spec)}… ${percent}%`;
  const where = `step ${step.step} of ${step.steps}`;
  if (spec.method === 'train-mapper') return `Running ${describeSpec(spec)}… ${where} · loss ${step.loss.toFixed(4)} (CLIP ${step.clip.toFixed(4)}) · ${percent}%`;
  return `Running ${describeSpec(spec)}… ${where} · CLIP loss ${step.clip.toFixed(3)} · ${percent}%`;
}

/** The caption of a finished result. */
export function describeResult(data: EditJobData, meta: ResultMeta): string {
  const info = meta.info;
  if (info.method === 'optimize') return finish(optimizeCaption(data, meta, info), meta);
  if (info.method === 'train-mapper') return trainCaption(data, info);
  const parts = [`**${data.spec.prompt}**`, info.method];
  parts.push(`strength ${round2(info.strength)}`);
  if (info.threshold !== undefined) parts.push(`threshold ${round2(info.threshold)}`);
  if (info.channels !== undefined) parts.push(`${info.channels} channels`);
  if (info.mapper) parts.push(`mapper ${info.mapper}`);
  if (meta.photo) parts.push(`your photo (face score ${meta.photo.score.toFixed(2)})`);
  else if (meta.seed !== undefined) parts.push(`seed ${meta.seed}`);
  parts.push(`job ${data.jobId}`);
  return finish(`${parts.join(' · ')}\nReact ➕ for stronger, ➖ for weaker.`, meta);
}

function optimizeCaption(data: EditJobData, meta: ResultMeta, info: OptimizeInfo): string {
  const parts = [`**${data.spec.prompt}**`, 'optimize', `${info.steps} steps`, `l2 ${info.l2Lambda}`];
  if (info.idLambda) parts.push(`id ${info.idLambda}`);
  parts.push(`CLIP loss ${info.clip.toFixed(3)}`);
  if (meta.seed !== undefined) parts.push(`seed ${meta.seed}`);
  parts.push(`${round2(info.stepsPerS)} steps/s on ${info.device}`, `job ${data.jobId}`);
  return `${parts.join(' · ')}\nReact ➕ to move further from the start (less L2 pull), ➖ to stay closer.`;
}

function trainCaption(data: EditJobData, info: TrainInfo): string {
  const minutes = info.seconds >= 90 ? `${round2(info.seconds / 60)} min` : `${round2(info.seconds)} s`;
  const parts = [
    `Trained mapper **${info.name}** for this server`,
    `${info.steps} steps${info.resumedAt ? ` (continued from step ${info.resumedAt})` : ''}`,
    `loss ${info.loss.toFixed(4)} (CLIP ${info.clip.toFixed(4)})`,
    `${minutes} on ${info.device}`,
    `job ${data.jobId}`,
  ];
  const id = info.idLambda ? '' : ' Trained without the identity loss (the pack has no ArcFace weights).';
  return `${parts.join(' · ')}\nThe image: a sample face before → after. Try it: /styleclip ${info.name}.${id} Remove it with /styleclip-admin mapper-remove ${info.slug}.`;
}

function finish(text: string, meta: ResultMeta): string {
  if (meta.photo) text += `\n${photoNotes(meta.photo).join(' ')}`;
  if (meta.untrained) {
    text += `\n_Made with the untrained demo pack "${meta.pack}": images are noise-like. See docs/operations.md to install a real pack._`;
  }
  return text;
}

/** What a photo result says about its photo: which face, which frame, and how long it is kept. */
export function photoNotes(photo: NonNullable<ResultMeta['photo']>): string[] {
  const notes: string[] = [];
  if (photo.facesFound > 1) notes.push(`${photo.facesFound} faces found; the largest was edited.`);
  if (photo.firstFrameOnly) notes.push('Animated image: its first frame was edited.');
  notes.push('Your photo is kept only while this result is (❌ deletes both now).');
  return notes;
}

/** Nudges multiply the strength by this (➕) or divide by it (➖). */
export const NUDGE_FACTOR = 1.5;

export function nudgedStrength(strength: number, direction: 'stronger' | 'weaker'): number {
  return round2(direction === 'stronger' ? strength * NUDGE_FACTOR : strength / NUDGE_FACTOR);
}
