// A job's life on Slack: its placeholder message is edited as the job moves (throttled, in order), gets the
// result's buttons when it is done, and the finished image is uploaded into the thread with files.uploadV2. Both messages are linked to the job so that
// reactions on either find it.
import type { App, types } from '@slack/bolt';
import { isFinal, type BotCore, type CommandReply, type JobStatus, type JobUpdate } from '../../core/types.ts';
import type { Logger } from '../../log.ts';
import { BoundedMap } from '../../util/bounded-map.ts';
import { SerialQueue } from '../../util/serial-queue.ts';
import { Throttle } from '../../util/throttle.ts';
import { fileKey, linked, messageKey, type KnownJob } from './memory.ts';
import { errorCode, escapeText, mention, resultBlocks, revealedBlocks, statusText, withCaption } from './messages.ts';

/** A message the bot posted for a job before the job existed. */
export interface Placeholder {
  channel: string;
  ts: string;
  /** Thread the job's messages go in (the placeholder itself for a new command). */
  threadTs: string;
}

/** How an upload of a result's image went: done, failed (said on the job message), or no image (deleted, expired). */
export type Upload = 'uploaded' | 'failed' | 'gone';

/** Progress edits of one message at most this often (chat.update is rate limited per workspace). */
const PROGRESS_EVERY_MS = 2000;

export class JobMessages {
  /** Jobs seen by this process: lets reactions be filtered without a core call. */
  readonly known = new BoundedMap<string, KnownJob>(10_000);
  /** The last status shown per job. */
  private shown = new BoundedMap<string, JobStatus>(10_000);
  private readonly edits = new SerialQueue();
  private readonly progress = new Throttle<JobUpdate>(PROGRESS_EVERY_MS, (jobId, update) => void this.show(update));

  constructor(
    private readonly core: Pick<BotCore, 'linkMessage' | 'resultImage' | 'messagesForJob'>,
    private readonly client: App['client'],
    private readonly log: Logger,
  ) {}

  /**
   * Shows what a command or nudge answered on its placeholder: a queued job's status, or the reply itself.
   * Errors and private replies go to the user alone (`tell`) and the placeholder is removed.
   */
  async showReply(reply: CommandReply, p: Placeholder, userId: string, tell: (mrkdwn: string) => Promise<unknown>): Promise<void> {
    const job = reply.job;
    if (job) {
      this.known.set(job.id, { requesterId: userId, threadTs: p.threadTs });
      await this.core.linkMessage('slack', messageKey(p.channel, p.ts), job.id);
      await this.inOrder(job.id, async () => {
        if (this.shown.has(job.id)) return; // the job's own updates got there first
        const text = statusText({ status: 'queued', text: reply.text, requesterId: userId });
        await this.client.chat.update({ channel: p.channel, ts: p.ts, text });
      });
      return;
    }
    if (reply.error || reply.ephemeral) {
      await this.client.chat.delete({ channel: p.channel, ts: p.ts });
      await tell(escapeText(reply.text));
      return;
    }
    await this.client.chat.update({ channel: p.channel, ts: p.ts, text: `${mention(userId)} ${escapeText(reply.text)}` });
  }

  /** A job update from the core: edits the job's message (progress throttled) and, once completed, uploads the image. */
  deliver(update: JobUpdate): Promise<void> {
    const { jobId, target } = update;
    if (!target.messageId) return Promise.resolve();
    if (!this.known.has(jobId)) this.known.set(jobId, { requesterId: update.requesterId, threadTs: target.threadId });
    if (!isFinal(update.status)) {
      this.progress.push(jobId, update);
      return this.inOrder(jobId, async () => {}); // resolves once an edit sent now is done
    }
    this.progress.forget(jobId);
    return this.show(update);
  }

  /**
   * Removes everything that shows a deleted result: its image file and every message linked to it (the job
   * message with the caption, the message sharing the file, whatever Slack left of it once the file was gone),
   * plus `also` (the message a ❌ was on). Messages already gone are fine.
   */
  async removeResult(jobId: string, also: { channel: string; ts: string }): Promise<void> {
    this.progress.forget(jobId);
    await this.inOrder(jobId, async () => {
      // Read once an upload under way is done: it links the message that shares the image as it ends.
      const known = this.known.get(jobId)?.fileId;
      const keys = new Set([...(known ? [fileKey(known)] : []), ...(await this.core.messagesForJob('slack', jobId)), messageKey(also.channel, also.ts)]);
      const things = [...keys].map(linked);
      // Files first: Slack may leave a "file deleted" message behind, which the message pass then removes.
      for (const t of things) if ('file' in t) await this.ignoreGone(this.client.files.delete({ file: t.file }), 'file_not_found');
      for (const t of things) if ('ts' in t) await this.ignoreGone(this.client.chat.delete({ channel: t.channel, ts: t.ts }), 'message_not_found');
    });
  }

  private async ignoreGone(call: Promise<unknown>, gone: string): Promise<void> {
    try {
      await call;
    } catch (err) {
      if (errorCode(err) !== gone) this.log.warn({ err: errorCode(err) }, 'slack: could not remove a deleted result');
    }
  }

  /** Whether this process saw the job start and not yet finish. */
  inFlight(jobId: string): boolean {
    const status = this.shown.get(jobId);
    return this.known.has(jobId) && !(status && isFinal(status));
  }

  /** Resolves when the edits and uploads under way are done (for a clean shutdown). */
  idle(): Promise<void> {
    return this.edits.idle();
  }

  private show(update: JobUpdate): Promise<void> {
    const { jobId, target } = update;
    return this.inOrder(jobId, async () => {
      const last = this.shown.get(jobId);
      if (last && isFinal(last)) return; // late or repeated news of a finished job
      this.shown.set(jobId, update.status);
      const text = statusText(update);
      // A finished result's message carries its buttons (the image itself is a file share, which can't).
      const done = update.status === 'completed';
      const blocks = done ? resultBlocks(text, jobId, update.actions, update.spoiler) : undefined;
      const message = { channel: target.channelId, ts: target.messageId as string, threadTs: target.threadId ?? (target.messageId as string) };
      await this.client.chat.update({ channel: message.channel, ts: message.ts, text, ...(blocks ? { blocks } : {}) });
      // A spoiler waits for someone to press 👁 show image (reveal).
      if (done && !update.spoiler) await this.upload(jobId, message, text, blocks!);
    });
  }

  /**
   * 👁 show image on a hidden (spoiler) result: uploads its image into the thread, once, and takes the note and
   * the button off the job message. Says what happened: shown now, already shown, or gone.
   */
  async reveal(jobId: string, message: Placeholder, caption: string, blocks: types.KnownBlock[]): Promise<Upload | 'already'> {
    let outcome: Upload | 'already' = 'gone';
    await this.inOrder(jobId, async () => {
      if ((await this.core.messagesForJob('slack', jobId)).some((k) => 'file' in linked(k))) {
        outcome = 'already';
        return;
      }
      outcome = await this.upload(jobId, message, caption, blocks); // a failure keeps the button, to try again
      if (outcome === 'uploaded') await this.client.chat.update({ channel: message.channel, ts: message.ts, text: caption, blocks: revealedBlocks(blocks) });
    });
    return outcome;
  }

  /** Runs `task` after everything already scheduled for the job, so edits never land out of order. */
  private inOrder(jobId: string, task: () => Promise<void>): Promise<void> {
    return this.edits.run(jobId, task).catch((err: unknown) => this.log.warn({ jobId, err: errorCode(err) }, 'slack message update failed'));
  }

  /** Uploads a result's image into the job message's thread; a failure is told on the job message (`blocks`, amended). */
  private async upload(jobId: string, message: Placeholder, caption: string, blocks: types.KnownBlock[]): Promise<Upload> {
    const { channel, ts } = message;
    const image = await this.core.resultImage(jobId);
    if (!image) {
      this.log.warn({ jobId }, 'completed job has no image to upload');
      return 'gone';
    }
    // A photo edit: the aligned before → after shared beside the pasted-back photo, in the same message.
    const strip = await this.core.resultImage(jobId, undefined, 'before-after').catch(() => null);
    let fileId: string | undefined;
    try {
      const res = await this.client.filesUploadV2({
        channel_id: channel,
        thread_ts: message.threadTs,
        file_uploads: [image, ...(strip ? [strip] : [])].map((f) => ({ file: f.bytes, filename: f.filename, title: f.filename })),
        initial_comment: caption,
      });
      fileId = (res.files as { files?: { id?: string }[] }[])[0]?.files?.[0]?.id;
    } catch (err) {
      const text = `${caption}\n:warning: I couldn't upload the image (${errorCode(err)}).`;
      await this.client.chat.update({ channel, ts, text, blocks: withCaption(blocks, text) });
      return 'failed';
    }
    if (!fileId) return 'uploaded';
    const known = this.known.get(jobId);
    if (known) known.fileId = fileId;
    await this.core.linkMessage('slack', fileKey(fileId), jobId);
    const shareTs = await this.shareTs(fileId, channel);
    if (shareTs) await this.core.linkMessage('slack', messageKey(channel, shareTs), jobId);
    return 'uploaded';
  }

  /** ts of the message that shares the file: Slack shares uploads asynchronously, so ask a few times. */
  private async shareTs(fileId: string, channel: string): Promise<string | undefined> {
    for (let attempt = 0; attempt < 3; attempt += 1) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, 1000));
      const { file } = await this.client.files.info({ file: fileId });
      const shares = file?.shares as Record<string, Record<string, { ts?: string }[]>> | undefined;
      const ts = shares?.public?.[channel]?.[0]?.ts ?? shares?.private?.[channel]?.[0]?.ts;
      if (ts) return ts;
    }
    this.log.debug({ fileId }, 'file share not visible yet; reactions work on the job message');
    return undefined;
  }
}
