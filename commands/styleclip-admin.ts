// /styleclip-admin — server settings: pack, method, strength bounds, threshold, blocked words, channels, limits,
// spoiler; the server's own mappers: train one (a long job on a gradient worker), cancel it, list, remove.
// Anyone may `show` and list mappers; only admins (as the platform says) may change anything. Changes are audited.
import { refuse, type Command } from '../src/core/command.ts';
import { LEVEL_CHOICES, planTraining } from '../src/core/plan-training.ts';
import { isTraining } from '../src/jobs/types.ts';
import type { PackSummary } from '../src/engine/types.ts';
import { findMapper } from '../src/engine/pack.ts';
import { applySetting, DEFAULT_SETTINGS, SETTING_KEYS, type ServerSettings, SettingsError, TRAIN_STEPS_LIMIT } from '../src/state/settings.ts';
import { MAX_PROMPT } from './styleclip.ts';

const keyChoices = SETTING_KEYS.map((k) => ({ name: k, value: k }));

/** The settings as a person reads them: a default left to the pack shows the pack's value, and says so. */
function show(s: ServerSettings, pack: PackSummary): string {
  const packStrength = Math.min(s.strengthMax, Math.max(s.strengthMin, pack.defaults.strength));
  const strengthDefault =
    s.strengthDefault !== null
      ? String(s.strengthDefault)
      : `${packStrength} (the pack's${packStrength === pack.defaults.strength ? '' : ` ${pack.defaults.strength}, kept within the range`}; mapper edits 1)`;
  const threshold = (t: number | 'auto') => (t === 'auto' ? 'automatic' : String(t));
  return [
    `pack: ${s.pack ?? `${pack.name} (the deployment's)`}`,
    `method: ${s.method}`,
    `strength: ${s.strengthMin} to ${s.strengthMax}, default ${strengthDefault}`,
    `threshold: ${s.threshold === null ? `${threshold(pack.defaults.threshold ?? 'auto')} (the pack's)` : threshold(s.threshold)}`,
    `channels: ${s.channels.length ? s.channels.join(', ') : 'all'}`,
    `blocked words: ${s.blockedWords.length}`,
    `optimize: ${s.optimize ? 'on' : 'off'}, up to ${s.optimizeStepsMax} steps, l2 ${s.optimizeL2}, id ${s.optimizeId}`,
    `limits per user: ${s.userRunning} running + ${s.userWaiting} waiting; per server: ${s.serverRunning} running + ${s.serverWaiting} waiting`,
    `spoiler: ${s.spoiler ? 'on (results are hidden until someone asks to see them)' : 'off'}`,
    `mapper training: up to ${s.trainStepsMax} steps`,
  ].join('\n');
}

/** "a b c" is three words; "red hat, bad" is two phrases. */
function words(text: unknown): string[] {
  const raw = String(text ?? '');
  return (raw.includes(',') ? raw.split(',') : raw.split(/\s+/)).map((w) => w.trim().toLowerCase()).filter(Boolean);
}

const command: Command = {
  definition: {
    name: 'styleclip-admin',
    description: 'StyleCLIP settings for this server (admins)',
    adminOnly: true,
    options: [],
    subcommands: [
      { name: 'show', description: 'Show the current settings', options: [] },
      {
        name: 'set',
        description: 'Change a setting',
        options: [
          { name: 'key', description: 'Which setting', type: 'string', required: true, choices: keyChoices },
          { name: 'value', description: 'New value ("default" resets optional ones)', type: 'string', required: true, maxLength: 2000 },
        ],
      },
      {
        name: 'reset',
        description: 'Reset one setting (or all) to the default',
        options: [{ name: 'key', description: 'Which setting, or "all"', type: 'string', required: true, choices: [...keyChoices, { name: 'all', value: 'all' }] }],
      },
      {
        name: 'block',
        description: 'Block words in prompts (comma-separated for phrases)',
        options: [{ name: 'words', description: 'Words to block', type: 'string', required: true, maxLength: 2000 }],
      },
      {
        name: 'unblock',
        description: 'Unblock words',
        options: [{ name: 'words', description: 'Words to unblock', type: 'string', required: true, maxLength: 2000 }],
      },
      { name: 'blocked', description: 'List the blocked words (admins)', options: [] },
      { name: 'log', description: 'Recent settings changes', options: [] },
      { name: 'mappers', description: "This server's own mappers for its pack", options: [] },
      {
        name: 'train-mapper',
        description: 'Train a mapper for a prompt on a GPU worker (minutes to hours); /styleclip then uses it here',
        freeTextOption: 'prompt',
        publicReply: true,
        options: [
          { name: 'prompt', description: 'The text the mapper follows, e.g. "pixie cut"', type: 'string', required: true, maxLength: MAX_PROMPT },
          { name: 'steps', description: 'Training steps (default 10000, at most train-steps-max)', type: 'integer', min: 1, max: TRAIN_STEPS_LIMIT },
          { name: 'levels', description: 'Which layers it edits: all (default), coarse+medium for shape, medium+fine for colour…', type: 'string', choices: LEVEL_CHOICES.map((l) => ({ name: l, value: l })) },
        ],
      },
      { name: 'train-cancel', description: "Stop this server's mapper training", options: [] },
      {
        name: 'mapper-remove',
        description: "Remove one of this server's own mappers",
        options: [{ name: 'name', description: 'Mapper name or slug', type: 'string', required: true, maxLength: 200 }],
      },
    ],
  },

  async run({ subcommand, options }, ctx, services, target) {
    if (ctx.serverId === null) return refuse('Settings are per server: run this in a server channel, not a DM.');
    const scope = services.scope(ctx);
    const { settings, pack } = await services.serverSettings(ctx);
    if (subcommand === 'show') return { text: show(settings, pack), ephemeral: true };
    if (subcommand === 'mappers') {
      const own = pack.mappers.filter((m) => m.server);
      const packs = pack.mappers.filter((m) => !m.server).map((m) => m.name);
      return {
        text: [
          own.length ? `This server's mappers for pack ${pack.name}: ${own.map((m) => `${m.name} (${m.slug})`).join(', ')}.` : `This server has no mappers of its own for pack ${pack.name}.`,
          `The pack's: ${packs.length ? packs.join(', ') : 'none'} (read-only).`,
        ].join('\n'),
        ephemeral: true,
      };
    }
    if (!ctx.isPlatformAdmin) return refuse('Only server admins can change StyleCLIP settings.');

    const by = { id: ctx.user.id, name: ctx.user.name };
    try {
      switch (subcommand) {
        case 'set': {
          const key = String(options.key);
          const next = applySetting(settings, key, String(options.value), services.packs);
          await services.settings.save(scope, next, by, `set ${key} = ${options.value}`);
          return { text: `Set ${key}.\n${show(next, (next.pack && services.packs.get(next.pack)) || services.packs.defaultPack)}`, ephemeral: true };
        }
        case 'reset': {
          const key = String(options.key);
          let next: ServerSettings;
          if (key === 'all') next = { ...DEFAULT_SETTINGS };
          else if (key === 'channels') next = { ...settings, channels: [] };
          else next = applySetting(settings, key, defaultValue(key), services.packs);
          await services.settings.save(scope, next, by, `reset ${key}`);
          return { text: `Reset ${key}.\n${show(next, (next.pack && services.packs.get(next.pack)) || services.packs.defaultPack)}`, ephemeral: true };
        }
        case 'block':
        case 'unblock': {
          const list = words(options.words);
          const blocked = new Set(settings.blockedWords);
          for (const w of list) {
            if (subcommand === 'block') blocked.add(w);
            else blocked.delete(w);
          }
          // The audit log records the count, not the words (they may be offensive).
          await services.settings.save(scope, { ...settings, blockedWords: [...blocked] }, by, `${subcommand} ${list.length} word(s)`);
          return { text: `${subcommand === 'block' ? 'Blocked' : 'Unblocked'} ${list.length} word(s); ${blocked.size} blocked in all.`, ephemeral: true };
        }
        case 'train-mapper': {
          const plan = planTraining(settings, pack, {
            prompt: String(options.prompt ?? ''),
            steps: options.steps === undefined ? undefined : Number(options.steps),
            levels: options.levels === undefined ? undefined : String(options.levels),
          });
          if ('refusal' in plan) return refuse(plan.refusal);
          const reply = await services.submit({
            jobId: services.jobId(ctx),
            platform: ctx.platform,
            scope,
            requesterId: ctx.user.id,
            target,
            pack: pack.name,
            spec: plan.spec,
            source: { kind: 'seed', seed: 0 }, // the training faces: sampled from seed 0 (ψ 0.7), so a retrain is repeatable
            submittedAt: Date.now(),
          });
          if (reply.job) await services.settings.save(scope, settings, by, `train mapper "${plan.spec.prompt}" (${plan.spec.steps} steps, job ${reply.job.id})`);
          return reply; // public: the progress is posted where it was asked
        }
        case 'train-cancel': {
          const training = (await services.inFlight()).find((j) => j.data.scope === scope && isTraining(j.data.spec));
          if (!training) return refuse('No mapper training is running or waiting on this server.');
          const outcome = await services.cancel(training.id);
          await services.settings.save(scope, settings, by, `cancel mapper training "${training.data.spec.prompt}" (job ${training.id})`);
          const what = `the training of "${training.data.spec.prompt}" (job ${training.id})`;
          return { text: outcome === 'cancelling' ? `Stopping ${what}; nothing is saved.` : `Cancelled ${what}.`, ephemeral: true };
        }
        case 'mapper-remove': {
          const name = String(options.name ?? '').trim();
          const mapper = findMapper(pack.mappers, name);
          if (mapper && !mapper.server) return refuse(`"${mapper.name}" belongs to pack ${pack.name}, which is read-only; only this server's own mappers can be removed.`);
          const installed = services.packs.get(pack.name) ?? services.packs.defaultPack;
          const removed = mapper ? services.packs.removeServerMapper(installed, scope, mapper.slug) : undefined;
          if (!removed) return refuse(`This server has no mapper "${name}". See /styleclip-admin mappers.`);
          await services.settings.save(scope, settings, by, `remove mapper ${removed}`);
          return { text: `Removed mapper "${removed}".`, ephemeral: true };
        }
        case 'blocked':
          return { text: settings.blockedWords.length ? `Blocked: ${settings.blockedWords.join(', ')}` : 'No blocked words.', ephemeral: true };
        case 'log': {
          const history = await services.settings.history(scope, 10);
          if (!history.length) return { text: 'No changes yet.', ephemeral: true };
          return {
            text: history.map((h) => `${h.at} ${h.by.name ?? h.by.id}: ${h.change}`).join('\n'),
            ephemeral: true,
          };
        }
      }
    } catch (err) {
      if (err instanceof SettingsError) return refuse(err.message);
      throw err;
    }
    return refuse(`Unknown sub-command "${subcommand}".`);
  },
};

/** The text that `set` would take to restore a setting's default. */
function defaultValue(key: string): string {
  const d = DEFAULT_SETTINGS;
  const map: Record<string, unknown> = {
    pack: 'default',
    method: d.method,
    'strength-min': d.strengthMin,
    'strength-max': d.strengthMax,
    'strength-default': 'default',
    threshold: 'default',
    'user-running': d.userRunning,
    'user-waiting': d.userWaiting,
    'server-running': d.serverRunning,
    'server-waiting': d.serverWaiting,
    optimize: d.optimize ? 'on' : 'off',
    'optimize-steps-max': d.optimizeStepsMax,
    'optimize-l2': d.optimizeL2,
    'optimize-id': d.optimizeId,
    spoiler: d.spoiler ? 'on' : 'off',
    'train-steps-max': d.trainStepsMax,
  };
  return String(map[key]);
}

export default command;
