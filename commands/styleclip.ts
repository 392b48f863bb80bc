// /styleclip <prompt> — edit a face with text. Options come typed (Discord) or as `name:value` words (Slack, playground).
import { randomInt } from 'node:crypto';
import { mapperFor } from '../src/core/packs.ts';
import { refuse, type Command } from '../src/core/command.ts';
import type { EditJobData, JobSource, ResultMeta } from '../src/jobs/types.ts';
import type { EditSpec } from '../src/engine/types.ts';

export const MAX_PROMPT = 200;

/** Whole-word, case-insensitive match of any blocked word or phrase. */
export function blockedWordIn(text: string, blocked: string[]): string | undefined {
  const lower = ` ${text.toLowerCase().replace(/[^\p{L}\p{N}]+/gu, ' ')} `;
  return blocked.find((w) => w.trim() && lower.includes(` ${w.toLowerCase().trim()} `));
}

const round2 = (n: number) => Math.round(n * 100) / 100;

const command: Command = {
  definition: {
    name: 'styleclip',
    description: 'Edit a face with text (StyleCLIP)',
    freeTextOption: 'prompt',
    options: [
      // Autocomplete offers the pack's mapper prompts; any other text is still accepted.
      { name: 'prompt', description: 'What to change, e.g. "curly hair"', type: 'string', required: true, maxLength: MAX_PROMPT, autocomplete: true },
      {
        name: 'method',
        description: 'global (any text), mapper (trained per prompt) or auto',
        type: 'string',
        choices: [
          { name: 'auto', value: 'auto' },
          { name: 'global', value: 'global' },
          { name: 'mapper', value: 'mapper' },
        ],
      },
      { name: 'strength', description: 'How far to move (α); negative goes the other way', type: 'number' },
      { name: 'threshold', description: 'Disentanglement β from 0 to 1 (global method)', type: 'number', min: 0, max: 1 },
      { name: 'seed', description: 'Which random face to start from', type: 'integer', min: 0, max: 4294967295 },
      { name: 'source', description: 'Job id of a previous result to edit further', type: 'string', maxLength: 100, autocomplete: true },
      { name: 'neutral', description: 'Neutral text (advanced; used verbatim with the prompt)', type: 'string', maxLength: MAX_PROMPT },
    ],
  },

  async run({ options }, ctx, services, target) {
    const { settings, pack: serverPack } = await services.serverSettings(ctx);
    if (settings.channels.length && !settings.channels.includes(ctx.channelId)) {
      return refuse(`StyleCLIP is not enabled in this channel. Ask an admin, or use one of: ${settings.channels.join(', ')}.`);
    }
    const prompt = String(options.prompt ?? '').trim();
    const neutral = options.neutral === undefined ? undefined : String(options.neutral);
    if (blockedWordIn(`${prompt} ${neutral ?? ''}`, settings.blockedWords)) {
      return refuse('Your prompt contains a word that is blocked on this server.');
    }

    // Source: a previous result (by id, or the message replied to), else a random face.
    let sourceId = options.source === undefined ? undefined : String(options.source);
    if (!sourceId && ctx.replyToMessageKey) sourceId = (await services.jobForMessage(ctx, ctx.replyToMessageKey)) ?? undefined;
    let source: JobSource;
    let pack = serverPack;
    if (sourceId) {
      if (options.seed !== undefined) return refuse('Give either seed or source, not both.');
      const previous: ResultMeta | null = await services.result(sourceId);
      if (!previous) return refuse(`No finished result with id "${sourceId}" (it may have expired or not be done yet).`);
      const previousPack = services.packs.get(previous.pack);
      if (!previousPack) return refuse(`The result ${sourceId} was made with pack "${previous.pack}", which is no longer installed.`);
      pack = previousPack;
      source = { kind: 'result', jobId: sourceId };
    } else {
      source = { kind: 'seed', seed: options.seed === undefined ? randomInt(0, 2 ** 31) : Number(options.seed) };
    }

    let method = (options.method as string | undefined) ?? settings.method;
    const mapper = mapperFor(pack, prompt);
    if (method === 'auto') method = mapper && options.threshold === undefined && !neutral ? 'mapper' : 'global';
    if (method === 'mapper' && !mapper) {
      const names = pack.mappers.map((m) => m.name);
      return refuse(
        `Pack "${pack.name}" has no mapper for "${prompt}". ${names.length ? `Mappers: ${names.join(', ')}.` : 'It has none; use method:global.'}`,
      );
    }
    if (method === 'mapper' && (options.threshold !== undefined || neutral)) {
      return refuse('threshold and neutral apply to the global method only.');
    }

    const fallback = method === 'mapper' ? 1 : pack.defaults.strength;
    const strength =
      options.strength !== undefined
        ? Number(options.strength)
        : Math.min(settings.strengthMax, Math.max(settings.strengthMin, settings.strengthDefault ?? fallback));
    if (strength < settings.strengthMin || strength > settings.strengthMax) {
      return refuse(`strength ${strength} is outside this server's range ${settings.strengthMin} to ${settings.strengthMax}.`);
    }

    const spec: EditSpec =
      method === 'mapper'
        ? { method: 'mapper', prompt, mapper: mapper!.slug, strength }
        : {
            method: 'global',
            prompt,
            strength,
            threshold: options.threshold !== undefined ? Number(options.threshold) : (settings.threshold ?? pack.defaults.threshold ?? 'auto'),
            ...(neutral ? { neutral } : {}),
          };
    const data: EditJobData = {
      jobId: services.jobId(ctx),
      platform: ctx.platform,
      scope: services.scope(ctx),
      requesterId: ctx.user.id,
      target,
      pack: pack.name,
      spec,
      source,
      submittedAt: Date.now(),
    };
    return services.submit(data);
  },

  async autocomplete(option, partial, ctx, services) {
    if (option === 'prompt') {
      const { pack } = await services.serverSettings(ctx);
      const needle = partial.trim().toLowerCase();
      return pack.mappers.map((m) => m.name).filter((name) => name.toLowerCase().includes(needle));
    }
    if (option !== 'source') return [];
    return (await services.recentResults(ctx)).filter((id) => id.startsWith(partial));
  },
};

export default command;

/** One line describing an edit, for queued replies and result captions. */
export function describeSpec(spec: EditSpec): string {
  const parts = [`**${spec.prompt}**`, spec.method, `strength ${round2(spec.strength)}`];
  if (spec.method === 'global' && spec.threshold !== undefined) parts.push(`threshold ${spec.threshold}`);
  return parts.join(' · ');
}

/** The caption of a finished result. */
export function describeResult(data: EditJobData, meta: ResultMeta): string {
  const info = meta.info;
  const parts = [`**${data.spec.prompt}**`, info.method];
  parts.push(`strength ${round2(info.strength)}`);
  if (info.threshold !== undefined) parts.push(`threshold ${round2(info.threshold)}`);
  if (info.channels !== undefined) parts.push(`${info.channels} channels`);
  if (info.mapper) parts.push(`mapper ${info.mapper}`);
  if (meta.seed !== undefined) parts.push(`seed ${meta.seed}`);
  parts.push(`job ${data.jobId}`);
  let text = `${parts.join(' · ')}\nReact ➕ for stronger, ➖ for weaker.`;
  if (meta.untrained) {
    text += `\n_Made with the untrained demo pack "${meta.pack}": images are noise-like. See docs/operations.md to install a real pack._`;
  }
  return text;
}

/** Nudges multiply the strength by this (➕) or divide by it (➖). */
export const NUDGE_FACTOR = 1.5;

export function nudgedStrength(strength: number, direction: 'stronger' | 'weaker'): number {
  return round2(direction === 'stronger' ? strength * NUDGE_FACTOR : strength / NUDGE_FACTOR);
}
