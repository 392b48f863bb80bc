// /styleclip <prompt> — edit a face with text. Options come typed (Discord) or as `name:value` words (Slack, playground).
import { randomInt } from 'node:crypto';
import { refuse, type Command } from '../src/core/command.ts';
import { planEdit } from '../src/core/plan-edit.ts';
import { OPTIMIZE_STEPS_LIMIT, type MethodSetting } from '../src/state/settings.ts';
import { PHOTO_NOT_OPTIMIZED, type EditJobData, type JobSource } from '../src/jobs/types.ts';
import type { Attachment } from '../src/core/types.ts';

export const MAX_PROMPT = 200;

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
        description: 'global (any text), mapper (trained per prompt), optimize (gradient steps; slow) or auto',
        type: 'string',
        choices: [
          { name: 'auto', value: 'auto' },
          { name: 'global', value: 'global' },
          { name: 'mapper', value: 'mapper' },
          { name: 'optimize', value: 'optimize' },
        ],
      },
      { name: 'strength', description: 'How far to move (α); negative goes the other way', type: 'number' },
      { name: 'threshold', description: 'Disentanglement β from 0 to 1 (global method)', type: 'number', min: 0, max: 1 },
      { name: 'seed', description: 'Which random face to start from', type: 'integer', min: 0, max: 4294967295 },
      { name: 'source', description: 'Job id of a previous result to edit further', type: 'string', maxLength: 100, autocomplete: true },
      { name: 'steps', description: 'Optimization steps (method optimize; official 300)', type: 'integer', min: 1, max: OPTIMIZE_STEPS_LIMIT },
      { name: 'neutral', description: 'Neutral text (advanced; used verbatim with the prompt)', type: 'string', maxLength: MAX_PROMPT },
      { name: 'image', description: 'A photo with a face to edit instead of a random face (kept only as long as the result)', type: 'attachment' },
    ],
  },

  async run({ options }, ctx, services, target) {
    const { settings, pack: serverPack } = await services.serverSettings(ctx);
    // Source: a previous result (by id, or the message replied to), else a random face.
    // …or the user's photo, attached to the command.
    const image = options.image as Attachment | undefined;
    if (image && (options.seed !== undefined || options.source !== undefined)) return refuse('Give one of image, seed or source.');
    if (image && options.method === 'optimize') return refuse(PHOTO_NOT_OPTIMIZED);
    let sourceId = options.source === undefined ? undefined : String(options.source);
    if (!sourceId && !image && ctx.replyToMessageKey) sourceId = (await services.jobForMessage(ctx, ctx.replyToMessageKey)) ?? undefined;
    let source: JobSource;
    let pack = serverPack;
    if (sourceId) {
      if (options.seed !== undefined) return refuse('Give either seed or source, not both.');
      const previous = await services.result(sourceId);
      if (!previous) return refuse(`No finished result with id "${sourceId}" (it may have expired or not be done yet).`);
      const previousPack = services.packs.get(previous.pack);
      if (!previousPack) return refuse(`The result ${sourceId} was made with pack "${previous.pack}", which is no longer installed.`);
      pack = previousPack;
      if (options.method === 'optimize' && previous.info.method === 'global') {
        return refuse(`method:optimize works on W+ latents; ${sourceId} is a global (StyleSpace) edit. Start from a seed, a mapper or an optimize result.`);
      }
      source = { kind: 'result', jobId: sourceId };
    } else {
      source = { kind: 'seed', seed: options.seed === undefined ? randomInt(0, 2 ** 31) : Number(options.seed) };
    }

    const plan = planEdit(settings, pack, ctx.channelId, {
      prompt: String(options.prompt ?? '').trim(),
      neutral: options.neutral === undefined ? undefined : String(options.neutral),
      method: options.method as MethodSetting | 'optimize' | undefined,
      steps: options.steps === undefined ? undefined : Number(options.steps),
      strength: options.strength === undefined ? undefined : Number(options.strength),
      threshold: options.threshold === undefined ? undefined : Number(options.threshold),
    });
    if ('refusal' in plan) return refuse(plan.refusal);
    // Checked and stored only once the edit itself may run; deleted again if it is not queued.
    let animated = false;
    if (image) {
      if (!pack.encoder) return refuse(`Pack "${pack.name}" has no image encoder, so it cannot edit photos; ask an admin.`);
      const photo = await services.acceptPhoto(ctx, image);
      if ('refusal' in photo) return refuse(photo.refusal);
      source = { kind: 'photo', key: photo.key };
      animated = photo.animated;
    }
    const data: EditJobData = {
      jobId: services.jobId(ctx),
      platform: ctx.platform,
      scope: services.scope(ctx),
      requesterId: ctx.user.id,
      target,
      pack: pack.name,
      spec: plan.spec,
      source,
      submittedAt: Date.now(),
    };
    const reply = await services.submit(data);
    if (source.kind === 'photo' && !reply.job) await services.dropPhoto(source.key);
    if (animated && reply.job) reply.text += ' (Animated image: its first frame will be edited.)';
    return reply;
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
