// What the adapter remembers of jobs in this process. It only saves Slack calls or duplicate work;
// everything that must survive a restart lives in the bot core (Redis when configured).

/** What the adapter has seen of a job: who asked, and the thread its messages go in. */
export interface KnownJob {
  requesterId: string;
  threadTs?: string;
  /** The uploaded result, once there is one. */
  fileId?: string;
}

/** Key under which a Slack message is linked to a job (`BotCore.linkMessage`). */
export function messageKey(channel: string, ts: string): string {
  return `${channel}:${ts}`;
}
