// Small in-process memories with a size cap (oldest entries go first). They only save Slack calls or
// duplicate work; everything that must survive a restart lives in the bot core (Redis when configured).

export class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly maxSize: number) {
    super();
  }

  override set(key: K, value: V): this {
    super.delete(key);
    super.set(key, value);
    while (this.size > this.maxSize) this.delete(this.keys().next().value as K);
    return this;
  }
}

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
