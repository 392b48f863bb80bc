// Shows a job on the Discord message that stands for it: queued/progress edits (throttled), the
// final image as an attachment within the upload limit, errors as a red embed, and the ➕ ➖ ❌ seeds.
// Edits go through the interaction's webhook while its token lives (15 min; works in DMs and without
// channel permissions), then through the bot's channel API with the stored ids.
import { DiscordAPIError, HTTPError, Routes, type REST, type RawFile } from 'discord.js';
import type { Logger } from '../../log.ts';
import type { BotCore, JobUpdate } from '../../core/types.ts';

export const REACTIONS = { stronger: '➕', weaker: '➖', delete: '❌' } as const;
/** Discord's default upload limit when no interaction told us the channel's. */
export const DEFAULT_SIZE_LIMIT = 10 * 1024 * 1024;
/** Interaction tokens last 15 min; stop using one a little before Discord does. */
const TOKEN_LIFETIME_MS = 15 * 60_000 - 30_000;
/** State of a message idle this long is dropped; a late update rebuilds it (channel API edits). */
const FORGET_AFTER_MS = 30 * 60_000;
const RED = 0xed4245;
/** Errors after which retrying can't help: unknown channel/message/webhook, missing access/permissions. */
const PERMANENT = new Set([10003, 10008, 10015, 50001, 50013]);
const TOKEN_GONE = new Set([50027, 10015]);

export interface MessageInfo {
  channelId: string;
  messageId: string;
  /** The interaction token that created the message, and when the interaction was created. */
  token?: string;
  createdAt?: number;
  sizeLimit?: number;
  ephemeral?: boolean;
}

interface MessageState extends Required<Omit<MessageInfo, 'token'>> {
  token?: string;
  jobId?: string;
  /** initial: only the command's reply may be shown; final: the job's result is shown. */
  stage: 'initial' | 'progress' | 'final';
  lastEditAt: number;
  pending?: JobUpdate;
  timer?: NodeJS.Timeout;
  chain: Promise<void>;
  dead: boolean;
  seeded: boolean;
  touchedAt: number;
  /** The latest update shown, to cancel its job if the message becomes unreachable. */
  last?: JobUpdate;
}

interface Body { content?: string; embeds?: unknown[]; attachments?: { id: number; filename: string }[]; allowed_mentions?: unknown }

/** A one-line description of a REST failure; never the URL (interaction tokens are in webhook URLs). */
export function describeError(err: unknown): string {
  if (err instanceof DiscordAPIError) return `${err.status} ${err.code}: ${err.message.split("\n")[0]}`;
  return err instanceof Error ? err.message.split('\n')[0] : String(err);
}

/** Discord refuses a message whose content is over 2000 characters (embed descriptions: 4096). */
export function clip(text: string, max = 2000): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function redEmbed(title: string, text: string): Record<string, unknown> {
  return { title, description: clip(text, 4096), color: RED };
}

function statusLine(u: JobUpdate): string {
  if (u.status === 'queued') return u.position && u.position > 1 ? `⏳ Queued (#${u.position} in line)` : '⏳ Queued, starting soon';
  return `🎨 Editing… ${Math.round(u.progress ?? 0)}%`;
}

export class Deliveries {
  private readonly messages = new Map<string, MessageState>();

  constructor(
    private readonly core: BotCore,
    private readonly rest: REST,
    /** Known once the gateway said READY. */
    private readonly applicationId: () => string,
    private readonly log: Logger,
    private readonly throttleMs = 2000,
  ) {}

  /** Remembers a message before its job exists, so that no update can race past it. */
  register(info: MessageInfo): void {
    this.forgetIdle();
    const old = this.messages.get(info.messageId);
    if (old) clearTimeout(old.timer);
    this.messages.set(info.messageId, {
      channelId: info.channelId,
      messageId: info.messageId,
      token: info.token,
      createdAt: info.createdAt ?? 0,
      sizeLimit: info.sizeLimit ?? DEFAULT_SIZE_LIMIT,
      ephemeral: info.ephemeral ?? false,
      stage: 'initial',
      lastEditAt: 0,
      chain: old?.chain ?? Promise.resolve(),
      dead: false,
      seeded: old?.seeded ?? false,
      touchedAt: Date.now(),
    });
  }

  private forgetIdle(): void {
    const cutoff = Date.now() - FORGET_AFTER_MS;
    for (const [id, s] of this.messages) if (s.touchedAt < cutoff && !s.timer) this.messages.delete(id);
  }

  /** Before a ➕/➖ re-run: the message's next job is adopted from whichever update names it first. */
  expectJob(messageId: string): () => void {
    const s = this.messages.get(messageId);
    if (!s) return () => {};
    const { jobId, stage } = s;
    this.reset(s, undefined);
    return () => {
      if (s.jobId === undefined) Object.assign(s, { jobId, stage });
    };
  }

  /** The message now shows `jobId`; until the job's first update, it shows the command's reply `text`. */
  setJob(messageId: string, jobId: string, text: string): Promise<void> {
    const s = this.messages.get(messageId);
    if (!s) return Promise.resolve();
    if (s.jobId !== undefined && s.jobId !== jobId) this.reset(s, jobId);
    s.jobId = jobId;
    return this.showText(messageId, text);
  }

  private reset(s: MessageState, jobId: string | undefined): void {
    clearTimeout(s.timer);
    Object.assign(s, { jobId, stage: 'initial', timer: undefined, pending: undefined });
  }

  /** Replaces the message's text (the command's immediate reply) unless the job already moved on. */
  showText(messageId: string, text: string): Promise<void> {
    const s = this.messages.get(messageId);
    if (!s || s.stage !== 'initial') return s?.chain ?? Promise.resolve();
    s.lastEditAt = Date.now();
    return this.enqueue(s, () => this.edit(s, { content: text, embeds: [] }));
  }

  /** A job update from the core. Progress is throttled per message; final states go out at once. */
  update(u: JobUpdate): void {
    const messageId = u.target.messageId;
    if (!messageId) return;
    let s = this.messages.get(messageId);
    if (!s) {
      // Another bot instance sent the command, or we restarted: edit through the channel API.
      this.register({ channelId: u.target.channelId, messageId });
      s = this.messages.get(messageId)!;
    }
    s.jobId ??= u.jobId;
    s.touchedAt = Date.now();
    if (s.dead || u.jobId !== s.jobId || s.stage === 'final') return;
    s.last = u;
    if (u.status === 'queued' || u.status === 'running') {
      s.stage = 'progress';
      s.pending = u;
      if (s.timer) return;
      const wait = Math.max(0, s.lastEditAt + this.throttleMs - Date.now());
      s.timer = setTimeout(() => {
        s.timer = undefined;
        const p = s.pending;
        s.pending = undefined;
        if (!p || s.stage !== 'progress' || p.jobId !== s.jobId) return;
        s.lastEditAt = Date.now();
        void this.enqueue(s, () => this.edit(s, { content: p.text || statusLine(p), embeds: [] }));
      }, wait);
      return;
    }
    clearTimeout(s.timer);
    s.timer = undefined;
    s.pending = undefined;
    s.stage = 'final';
    s.lastEditAt = Date.now();
    if (u.status === 'completed') void this.enqueue(s, () => this.showResult(s, u));
    else if (u.status === 'failed') void this.enqueue(s, () => this.edit(s, { content: '', embeds: [redEmbed('Edit failed', u.text || 'The edit failed.')], attachments: [] }));
    else void this.enqueue(s, () => this.edit(s, { content: u.text || 'Cancelled.', embeds: [], attachments: [] }));
  }

  /** Deletes the bot's message (❌ on a result); later updates for it are dropped. */
  async remove(messageId: string, channelId: string): Promise<void> {
    if (!this.messages.has(messageId)) this.register({ channelId, messageId });
    const s = this.messages.get(messageId)!;
    clearTimeout(s.timer);
    s.dead = true; // edits still queued are skipped
    await s.chain;
    const useToken = this.tokenAlive(s);
    try {
      await this.rest.delete(useToken ? Routes.webhookMessage(this.applicationId(), s.token!, '@original') : Routes.channelMessage(channelId, messageId), { auth: !useToken });
    } catch (err) {
      this.log.warn({ messageId }, `discord: could not delete message: ${describeError(err)}`);
    }
  }

  /** Waits for every queued edit (for graceful shutdown and tests). */
  async idle(): Promise<void> {
    await Promise.all([...this.messages.values()].map((s) => s.chain));
  }

  close(): void {
    for (const s of this.messages.values()) clearTimeout(s.timer);
    this.messages.clear();
  }

  private enqueue(s: MessageState, step: () => Promise<void>): Promise<void> {
    s.chain = s.chain.then(async () => {
      if (s.dead) return;
      try {
        await step();
      } catch (err) {
        if (err instanceof DiscordAPIError && (PERMANENT.has(Number(err.code)) || err.status === 403)) {
          // Deleted channel, kicked bot, missing permissions: later edits can't work either.
          s.dead = true;
          clearTimeout(s.timer);
          this.log.warn({ jobId: s.jobId, channelId: s.channelId }, `discord: giving up on message ${s.messageId}: ${describeError(err)}`);
          // Nobody can see the result: cancel the job (as its requester's ❌ would) unless it is done.
          const u = s.last;
          if (u && s.stage !== 'final') void this.core.nudge(u.jobId, 'delete', u.requesterId, `discord:undeliverable:${u.jobId}`, u.target).catch(() => {});
        } else {
          this.log.error({ jobId: s.jobId, channelId: s.channelId }, `discord: edit failed: ${describeError(err)}`);
        }
      }
    });
    return s.chain;
  }

  private tokenAlive(s: MessageState): boolean {
    return Boolean(s.token) && Date.now() < s.createdAt + TOKEN_LIFETIME_MS;
  }

  /** PATCH the message: through the interaction webhook while its token lives, else the channel API. */
  private async edit(s: MessageState, body: Body, files: RawFile[] = []): Promise<void> {
    const content = body.content === undefined ? {} : { content: clip(body.content) };
    const payload = { body: { allowed_mentions: { parse: [] }, ...body, ...content }, files: files.length ? files : undefined };
    if (this.tokenAlive(s)) {
      try {
        await this.rest.patch(Routes.webhookMessage(this.applicationId(), s.token!, '@original'), { ...payload, auth: false });
        return;
      } catch (err) {
        if (!(err instanceof DiscordAPIError && TOKEN_GONE.has(Number(err.code)))) throw err;
        s.token = undefined;
        this.log.info({ jobId: s.jobId }, 'discord: interaction token expired, editing through the channel API');
      }
    }
    if (s.ephemeral) throw new Error('an ephemeral message cannot be edited after its interaction token expired');
    await this.rest.patch(Routes.channelMessage(s.channelId, s.messageId), payload);
  }

  private async showResult(s: MessageState, u: JobUpdate): Promise<void> {
    let limit = s.sizeLimit;
    for (let attempt = 0; ; attempt++) {
      const image = await this.core.resultImage(u.jobId, limit);
      const body: Body = { content: u.text, embeds: [], attachments: image ? [{ id: 0, filename: image.filename }] : [] };
      try {
        await this.edit(s, body, image ? [{ name: image.filename, data: image.bytes, contentType: image.mime }] : []);
        break;
      } catch (err) {
        // Our idea of the limit was too generous (e.g. a stale default): retry once, half the size.
        // (A 413 from Discord's edge is HTML, hence an HTTPError rather than a DiscordAPIError.)
        const tooLarge = (err instanceof DiscordAPIError || err instanceof HTTPError) && err.status === 413;
        if (attempt > 0 || !tooLarge) throw err;
        limit = Math.floor(limit / 2);
      }
    }
    if (!s.ephemeral && !s.seeded) await this.seedReactions(s);
  }

  private async seedReactions(s: MessageState): Promise<void> {
    s.seeded = true;
    try {
      for (const emoji of Object.values(REACTIONS)) {
        await this.rest.put(Routes.channelMessageOwnReaction(s.channelId, s.messageId, encodeURIComponent(emoji)));
      }
    } catch (err) {
      // The result is shown; without Add Reactions / Read Message History it just has no seeds.
      this.log.warn({ channelId: s.channelId }, `discord: could not add reactions: ${describeError(err)}`);
    }
  }
}
