// Shows a job on the Discord message that stands for it: queued/progress edits (throttled), the
// final image as an attachment within the upload limit with the result's buttons, errors as a red embed, and
// the ➕ ➖ ❌ seeds.
// Edits go through the interaction's webhook while its token lives (15 min; works in DMs and without
// channel permissions), then through the bot's channel API with the stored ids.
import { DiscordAPIError, HTTPError, Routes, type REST, type RawFile } from 'discord.js';
import type { Logger } from '../../log.ts';
import type { BotCore, JobUpdate } from '../../core/types.ts';
import { SerialQueue } from '../../util/serial-queue.ts';
import { Throttle } from '../../util/throttle.ts';
import { resultButtons } from '../result-buttons.ts';
import { describeError } from './rest.ts';

export const REACTIONS = { stronger: '➕', weaker: '➖', cancel: '❌' } as const;
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
  dead: boolean;
  seeded: boolean;
  touchedAt: number;
  /** The latest update shown, to cancel its job if the message becomes unreachable. */
  last?: JobUpdate;
  /** The latest update of a job the message will show once `setJob` names it (a ➕ re-run can be that fast). */
  parked?: JobUpdate;
}

interface Body { content?: string; embeds?: unknown[]; attachments?: { id: number; filename: string }[]; allowed_mentions?: unknown; components?: unknown[] }

/** A result's buttons as one action row (Discord allows 5 buttons a row; a result has at most 5). */
export function buttonRows(jobId: string, actions: JobUpdate['actions']): unknown[] {
  const buttons = resultButtons(jobId, actions).map((b) => ({
    type: 2, // button
    style: b.action === 'cancel' ? 4 : 2, // danger for ❌, secondary for the rest
    emoji: { name: b.emoji },
    label: b.label,
    custom_id: b.id,
  }));
  return buttons.length ? [{ type: 1, components: buttons }] : [];
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

export class JobMessages {
  private readonly messages = new Map<string, MessageState>();
  /** Edits of one message go out in order. */
  private readonly edits = new SerialQueue();
  private readonly progress: Throttle<JobUpdate>;

  constructor(
    private readonly core: BotCore,
    private readonly rest: REST,
    /** Known once the gateway said READY. */
    private readonly applicationId: () => string,
    private readonly log: Logger,
    throttleMs = 2000,
  ) {
    this.progress = new Throttle(throttleMs, (messageId, u) => {
      const s = this.messages.get(messageId);
      if (s && s.stage === 'progress' && u.jobId === s.jobId) void this.enqueue(s, () => this.showProgress(s, u));
    });
  }

  /** Remembers a message before its job exists, so that no update can race past it. */
  register(info: MessageInfo): void {
    this.forgetIdle();
    const old = this.messages.get(info.messageId);
    this.progress.forget(info.messageId);
    this.messages.set(info.messageId, {
      channelId: info.channelId,
      messageId: info.messageId,
      token: info.token,
      createdAt: info.createdAt ?? 0,
      sizeLimit: info.sizeLimit ?? DEFAULT_SIZE_LIMIT,
      ephemeral: info.ephemeral ?? false,
      stage: 'initial',
      dead: false,
      seeded: old?.seeded ?? false,
      touchedAt: Date.now(),
    });
  }

  private forgetIdle(): void {
    const cutoff = Date.now() - FORGET_AFTER_MS;
    for (const [id, s] of this.messages) {
      if (s.touchedAt < cutoff) {
        this.messages.delete(id);
        this.progress.forget(id);
      }
    }
  }

  /** The message now shows `jobId`; until the job's first update, it shows the command's reply `text`. */
  setJob(messageId: string, jobId: string, text: string): Promise<void> {
    const s = this.messages.get(messageId);
    if (!s) return Promise.resolve();
    if (s.jobId !== jobId) {
      this.progress.forget(messageId);
      Object.assign(s, { jobId, stage: 'initial' });
    }
    const shown = this.showText(messageId, text);
    const parked = s.parked;
    s.parked = undefined;
    if (parked?.jobId === jobId) this.update(parked);
    return shown;
  }

  /** Replaces the message's text (the command's immediate reply) unless the job already moved on. */
  showText(messageId: string, text: string): Promise<void> {
    const s = this.messages.get(messageId);
    if (!s || s.stage !== 'initial') return this.edits.idle();
    this.progress.shown(messageId);
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
    if (u.jobId !== s.jobId) {
      // A re-run's updates can arrive before the core's answer names its job: keep the latest for setJob.
      if (s.parked?.jobId !== u.jobId || s.parked.status === 'queued' || s.parked.status === 'running') s.parked = u;
      return;
    }
    if (s.dead || s.stage === 'final') return;
    s.last = u;
    if (u.status === 'queued' || u.status === 'running') {
      s.stage = 'progress';
      this.progress.push(messageId, u);
      return;
    }
    this.progress.shown(messageId);
    s.stage = 'final';
    const state = s;
    if (u.status === 'completed') void this.enqueue(s, () => this.showResult(state, u));
    else if (u.status === 'failed') void this.enqueue(s, () => this.edit(state, { content: '', embeds: [redEmbed('Edit failed', u.text || 'The edit failed.')], attachments: [] }));
    else void this.enqueue(s, () => this.edit(state, { content: u.text || 'Cancelled.', embeds: [], attachments: [] }));
  }

  /** Deletes the bot's message (❌ on a result); later updates for it are dropped. */
  async remove(messageId: string, channelId: string): Promise<void> {
    if (!this.messages.has(messageId)) this.register({ channelId, messageId });
    const s = this.messages.get(messageId)!;
    this.progress.forget(messageId);
    s.dead = true; // edits still queued are skipped
    await this.edits.run(messageId, async () => {
      const useToken = this.tokenAlive(s);
      try {
        await this.rest.delete(useToken ? Routes.webhookMessage(this.applicationId(), s.token!, '@original') : Routes.channelMessage(channelId, messageId), { auth: !useToken });
      } catch (err) {
        this.log.warn({ messageId }, `discord: could not delete message: ${describeError(err)}`);
      }
    });
  }

  /** Waits for every queued edit (for graceful shutdown and tests). */
  idle(): Promise<void> {
    return this.edits.idle();
  }

  close(): void {
    this.progress.close();
    this.messages.clear();
  }

  private enqueue(s: MessageState, step: () => Promise<void>): Promise<void> {
    return this.edits.run(s.messageId, async () => {
      if (s.dead) return;
      try {
        await step();
      } catch (err) {
        this.failed(s, err);
      }
    });
  }

  private failed(s: MessageState, err: unknown): void {
    if (!(err instanceof DiscordAPIError && (PERMANENT.has(Number(err.code)) || err.status === 403))) {
      this.log.error({ jobId: s.jobId, channelId: s.channelId }, `discord: edit failed: ${describeError(err)}`);
      return;
    }
    // Deleted channel, kicked bot, missing permissions: later edits can't work either.
    s.dead = true;
    this.progress.forget(s.messageId);
    this.log.warn({ jobId: s.jobId, channelId: s.channelId }, `discord: giving up on message ${s.messageId}: ${describeError(err)}`);
    // Nobody can see the result: cancel the job (as its requester's ❌ would) unless it is done.
    const u = s.last;
    if (u && s.stage !== 'final') void this.core.cancel(u.jobId, u.requesterId, `discord:undeliverable:${u.jobId}`).catch(() => {});
  }

  private tokenAlive(s: MessageState): boolean {
    return Boolean(s.token) && Date.now() < s.createdAt + TOKEN_LIFETIME_MS;
  }

  /** PATCH the message: through the interaction webhook while its token lives, else the channel API. */
  private async edit(s: MessageState, body: Body, files: RawFile[] = []): Promise<void> {
    const content = body.content === undefined ? {} : { content: clip(body.content) };
    // Buttons belong to the result a message shows: any other edit (a re-run's progress, an error) removes them.
    const payload = { body: { allowed_mentions: { parse: [] }, components: [], ...body, ...content }, files: files.length ? files : undefined };
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

  /** A progress edit; an optimize job's also carries its latest small preview image. */
  private async showProgress(s: MessageState, u: JobUpdate): Promise<void> {
    const preview = u.preview ? await this.core.previewImage?.(u.jobId).catch(() => null) : null;
    if (!preview) return this.edit(s, { content: u.text || statusLine(u), embeds: [] });
    await this.edit(s, { content: u.text || statusLine(u), embeds: [], attachments: [{ id: 0, filename: preview.filename }] }, [
      { name: preview.filename, data: preview.bytes, contentType: preview.mime },
    ]);
  }

  private async showResult(s: MessageState, u: JobUpdate): Promise<void> {
    let limit = s.sizeLimit;
    for (let attempt = 0; ; attempt++) {
      const found = await this.core.resultImage(u.jobId, limit);
      // Discord shows an attachment whose name starts with SPOILER_ blurred until clicked.
      // A photo edit: the aligned before → after beside the pasted-back photo (each file within the limit).
      const strip = found && u.beforeAfter ? await this.core.resultImage(u.jobId, limit, 'before-after').catch(() => null) : null;
      const spoil = <T extends { filename: string }>(f: T): T => (u.spoiler ? { ...f, filename: `SPOILER_${f.filename}` } : f);
      const images = [found, strip].filter((f) => f !== null).map(spoil);
      const body: Body = {
        content: u.text,
        embeds: [],
        attachments: images.map((f, id) => ({ id, filename: f.filename })),
        components: s.ephemeral ? [] : buttonRows(u.jobId, u.actions),
      };
      try {
        await this.edit(s, body, images.map((f) => ({ name: f.filename, data: f.bytes, contentType: f.mime })));
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
