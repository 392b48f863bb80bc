// /styleclip-help — how to use the bot.
import type { Command } from '../src/core/command.ts';
import { NUDGE_FACTOR } from '../src/core/captions.ts';

const command: Command = {
  definition: { name: 'styleclip-help', description: 'How to use the StyleCLIP bot', options: [], privateReply: true },

  async run(_args, ctx, services) {
    const { settings, pack } = await services.serverSettings(ctx);
    const lines = [
      '**StyleCLIP bot** — edit a face with text.',
      '`/styleclip curly hair` edits a new random face.',
      'Options (as `name:value` after the prompt in Slack and the playground): `method:auto|global|mapper`, ' +
        `\`strength:N\` (${settings.strengthMin} to ${settings.strengthMax}), \`threshold:0.15\` (0 to 1, global method), ` +
        '`seed:N` (which face), `source:JOB_ID` (edit a previous result; replying to it works too), `neutral:"a face"`.',
      `Example: \`/styleclip blue eyes strength:3 seed:7\`.`,
      pack.encoder
        ? 'Your own photo: attach one with a face to `/styleclip` (the `image` option; in the playground, the file button). The largest face is edited and pasted back into the photo.'
        : `Photos: this server's pack (${pack.name}) has no image encoder, so it edits random faces only.`,
      'Privacy: a photo is kept only as long as its result and never logged; ❌ on the result deletes both at once.',
      settings.optimize
        ? `\`method:optimize steps:N\` (1 to ${settings.optimizeStepsMax}) runs the slow gradient optimization on a worker with PyTorch, with previews; ➕/➖ on its result loosen/tighten its pull toward the start.`
        : '`method:optimize` is turned off on this server.',
      `React ➕ on your result for stronger (×${NUDGE_FACTOR}), ➖ for weaker, ❌ to delete or cancel.`,
      '`/styleclip-info` shows your queue and running jobs; `/styleclip-cancel` cancels them.',
      '`/styleclip-admin show` shows this server\'s settings (admins can change them, and train a mapper for a new prompt with `/styleclip-admin train-mapper`).',
      `Pack: ${pack.name}${pack.mappers.length ? `; mappers: ${pack.mappers.map((m) => (m.server ? `${m.name} (this server's)` : m.name)).join(', ')}` : ''}.`,
      `Commands: ${services
        .commands()
        .map((c) => `/${c.name}`)
        .join(', ')}.`,
    ];
    if (pack.untrained) lines.push('_This pack is untrained (demo weights): images are noise-like. See docs/operations.md to install a real pack._');
    return { text: lines.join('\n'), ephemeral: true };
  },
};

export default command;
