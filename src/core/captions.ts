// What users read about an edit: the one-line description in queued replies, the result caption, and the
// strength a ➕/➖ nudge asks for.
import type { EditJobData, JobSpec, OptimizeInfo, ResultMeta } from '../jobs/types.ts';

const round2 = (n: number) => Math.round(n * 100) / 100;

/** One line describing an edit, for queued replies and result captions. */
export function describeSpec(spec: JobSpec): string {
  if (spec.method === 'optimize') return `**${spec.prompt}** · optimize · ${spec.steps} steps · l2 ${spec.l2Lambda}${spec.idLambda ? ` · id ${spec.idLambda}` : ''}`;
  const parts = [`**${spec.prompt}**`, spec.method, `strength ${round2(spec.strength)}`];
  if (spec.method === 'global' && spec.threshold !== undefined) parts.push(`threshold ${spec.threshold}`);
  return parts.join(' · ');
}

/** The caption of a finished result. */
export function describeResult(data: EditJobData, meta: ResultMeta): string {
  const info = meta.info;
  if (info.method === 'optimize') return finish(optimizeCaption(data, meta, info), meta);
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
