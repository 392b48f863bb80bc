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

/** Key under which an uploaded result file is linked to its job, so a ❌ can delete the file after a restart. */
export function fileKey(fileId: string): string {
  return `file:${fileId}`;
}

/** What a key linked to a job stands for: an uploaded file, or a message. */
export function linked(key: string): { file: string } | { channel: string; ts: string } {
  if (key.startsWith('file:')) return { file: key.slice('file:'.length) };
  const at = key.indexOf(':');
  return { channel: key.slice(0, at), ts: key.slice(at + 1) };
}
