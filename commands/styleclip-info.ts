// /styleclip-info — your queued and running jobs, your limits (like Midjourney's /info).
import type { Command } from '../src/core/command.ts';

const command: Command = {
  definition: { name: 'styleclip-info', description: 'Your queued and running jobs and your limits', options: [], privateReply: true },

  async run(_args, ctx, services) {
    const { settings, pack } = await services.serverSettings(ctx);
    const all = await services.inFlight();
    const mine = all.filter((j) => j.data.platform === ctx.platform && j.data.requesterId === ctx.user.id);
    const running = mine.filter((j) => j.state === 'active');
    const waiting = mine.filter((j) => j.state === 'waiting');
    const lines = [
      `Running jobs: ${running.length}${running.length ? ` (${running.map((j) => `${j.id} "${j.data.spec.prompt}"`).join(', ')})` : ''}`,
      `Queued jobs: ${waiting.length}${waiting.length ? ` (${waiting.map((j) => `${j.id} "${j.data.spec.prompt}" #${j.position}`).join(', ')})` : ''}`,
      `Queue: ${all.filter((j) => j.state === 'waiting').length} waiting, ${all.filter((j) => j.state === 'active').length} running in all`,
      `Your limit: ${settings.userRunning} running + ${settings.userWaiting} waiting`,
      `Pack: ${pack.name}${pack.untrained ? ' (untrained demo weights)' : ''}, ${pack.resolution}×${pack.resolution}`,
    ];
    return { text: lines.join('\n'), ephemeral: true };
  },
};

export default command;
