// /styleclip <prompt> — edit a face with text. Options come typed (Discord) or as `name:value` words (Slack, playground).
import { randomInt } from 'node:crypto';
import { refuse, type Command } from '../src/core/command.ts';
import { planEdit } from '../src/core/plan-edit.ts';
import { OPTIMIZE_STEPS_LIMIT, type MethodSetting } from '../src/state/settings.ts';
import type { EditJobData, JobSource } from '../src/jobs/types.ts';

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
    ],
  },

  async run({ options }, ctx, services, target) {
    const { settings, pack: serverPack } = await services.serverSettings(ctx);
    // Source: a previous result (by id, or the message replied to), else a random face.
    let sourceId = options.source === undefined ? undefined : String(options.source);
    if (!sourceId && ctx.replyToMessageKey) sourceId = (await services.jobForMessage(ctx, ctx.replyToMessageKey)) ?? undefined;
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
