// /styleclip-cancel [job] — cancel one of your jobs, or all of them.
import { refuse, type Command } from '../src/core/command.ts';

const command: Command = {
  definition: {
    name: 'styleclip-cancel',
    description: 'Cancel your queued or running jobs',
    privateReply: true,
    options: [{ name: 'job', description: 'Job id (default: all of yours)', type: 'string', maxLength: 100, autocomplete: true }],
  },

  async run({ options }, ctx, services) {
    const mine = (await services.inFlight()).filter((j) => j.data.platform === ctx.platform && j.data.requesterId === ctx.user.id);
    const wanted = options.job === undefined ? mine : mine.filter((j) => j.id === String(options.job));
    if (!wanted.length) return refuse(options.job === undefined ? 'You have no queued or running jobs.' : `No job of yours with id "${options.job}" is queued or running.`);
    const outcomes = await Promise.all(wanted.map((j) => services.cancel(j.id)));
    const n = outcomes.filter((o) => o !== 'finished').length;
    return { text: `Cancelled ${n} job(s).`, ephemeral: true };
  },

  async autocomplete(_option, partial, ctx, services) {
    return (await services.inFlight())
      .filter((j) => j.data.platform === ctx.platform && j.data.requesterId === ctx.user.id && j.id.startsWith(partial))
      .map((j) => j.id)
      .slice(0, 25);
  },
};

export default command;
