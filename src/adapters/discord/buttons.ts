// Presses of a result's buttons (message components): acknowledged at once with a deferred update (Discord's
// 3 s; no loading state, the message stays as it is), then routed through the same `react` as the reaction they
// stand for. Refusals (not the requester, the result is gone, the server's rules) are answered privately.
import { MessageFlags, type ButtonInteraction } from 'discord.js';
import { parseButtonId } from '../result-buttons.ts';
import type { DiscordDeps } from './commands.ts';
import { clip } from './job-messages.ts';
import type { ReactionRouter } from './reactions.ts';
import { describeError } from './rest.ts';

export async function onButton(deps: DiscordDeps, reactions: ReactionRouter, i: ButtonInteraction): Promise<void> {
  const pressed = parseButtonId(i.customId);
  if (!pressed || pressed.action === 'show') return; // Discord blurs spoilers itself: no show button here
  const action = pressed.action;
  try {
    await i.deferUpdate();
  } catch (err) {
    // Already acknowledged (the same interaction delivered twice) or too late: whoever acknowledged it acts.
    deps.log.info({ interactionId: i.id }, `discord: button press not acknowledged: ${describeError(err)}`);
    return;
  }
  const answer = async (text: string) => {
    await i.followUp({ content: clip(text), flags: MessageFlags.Ephemeral });
  };
  await reactions.run(i.message.id, i.channelId, i.user.id, action, { jobId: pressed.jobId, answer });
}
