// The bot core: what the adapters talk to (BotCore, types.ts). A façade over the commands, the submissions
// (caps, queueing, cancelling), the job events (progress and final replies) and the result images. It is
// handed its store, queue and commands; the runtime decides whether they are Redis or in-process, and
// whether a worker runs beside it.
import { createHash } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { PackCatalog } from '../engine/catalog.ts';
import type { JobQueue } from '../jobs/queue.ts';
import { isOptimize, isTraining, type EditJobData, type JobSource, type Platform, type ResultMeta } from '../jobs/types.ts';
import { getJSON, isRedisDown, type Store } from '../state/store.ts';
import type { RedisHealth } from '../state/redis-health.ts';
import { keys } from '../state/keys.ts';
import { OPTIMIZE_LAMBDA_MAX, SettingsService, type ServerSettings } from '../state/settings.ts';
import { nudgedStrength } from './captions.ts';
import { CommandRefusal, refuse, type Command, type CommandServices } from './command.ts';
import { JobEvents } from './job-events.ts';
import { parseInput } from './parse.ts';
import { PhotoIntake } from './photos.ts';
import { planEdit, type EditRequest } from './plan-edit.ts';
import { nudgedL2 } from './plan-optimize.ts';
import { resultImage } from './result-image.ts';
import { Submissions, UNAVAILABLE } from './submissions.ts';
import { deletePhoto } from '../state/photos.ts';
import { Watchdog } from './watchdog.ts';
import {
  CANCELLED_MESSAGE,
  RESULT_GONE,
  type BotCore,
  type CommandDefinition,
  type CommandInput,
  type CommandReply,
  type FollowUp,
  type InvocationContext,
  type JobUpdate,
  type Nudge,
  type PhotoFetcher,
  type ReplyTarget,
  type ResultAction,
  type ResultImage,
  type ResultImageKind,
  type Via,
} from './types.ts';

export { LOST_IN_RESTART, RESTARTING, UNAVAILABLE } from './submissions.ts';

export interface BotOptions {
  commands: readonly Command[];
  packs: PackCatalog;
  store: Store;
  queue: JobQueue;
  metrics: Metrics;
  log: Logger;
  /** How long job records, results and message links live (RESULT_TTL_S). */
  resultTtlS: number;
  /** The store's Redis connection as this process sees it (null in embedded mode). */
  health?: RedisHealth | null;
  /** REDIS_OUTAGE_MS and WATCHDOG_SWEEP_MS (watchdog.ts). */
  outageMs: number;
  watchdogMs: number;
}

/** BullMQ ids may not contain ':' nor be all digits; ours are `<platform>-<requestId>`. */
export function makeJobId(platform: Platform, requestId: string): string {
  return `${platform}-${requestId.replace(/[^A-Za-z0-9_.-]/g, '_')}`.slice(0, 120);
}

/** Enough for a result's messages: the job message, the image, a few re-runs shown on it. */
const MAX_LINKS_PER_JOB = 20;

/** How a refusal to someone else names what they tried. */
const FOLLOW_UP_WORDS: Record<FollowUp, string> = {
  stronger: 'make it stronger',
  weaker: 'make it weaker',
  reroll: 'try it on a new face',
  original: 'show the original',
};

function scopeOf(ctx: { platform: Platform; serverId: string | null }): string {
  return `${ctx.platform}:${ctx.serverId ?? 'dm'}`;
}

export class Bot implements BotCore {
  readonly packs: PackCatalog;
  readonly queue: JobQueue;
  readonly store: Store;
  readonly metrics: Metrics;
  readonly log: Logger;
  private readonly settings: SettingsService;
  private readonly events: JobEvents;
  private readonly submissions: Submissions;
  /** With a durable queue (Redis) only: in process, jobs are lost only with the process itself. */
  private readonly watchdog: Watchdog | null;
  private readonly commandsByName: Map<string, Command>;
  private readonly services: CommandServices;
  private readonly photos: PhotoIntake;

  constructor(private readonly o: BotOptions) {
    ({ packs: this.packs, queue: this.queue, store: this.store, metrics: this.metrics, log: this.log } = o);
    this.settings = new SettingsService(o.store, o.log);
    this.events = new JobEvents(o);
    const health = o.health ?? null;
    this.watchdog = o.queue.durable
      ? new Watchdog({ ...o, health, events: this.events, sweepMs: o.watchdogMs, outageMs: o.outageMs })
      : null;
    this.submissions = new Submissions({ ...o, health, settings: this.settings, events: this.events, watchdog: this.watchdog });
    this.photos = new PhotoIntake(o.store, o.resultTtlS);
    this.commandsByName = new Map(o.commands.map((c) => [c.definition.name, c]));
    this.services = this.commandServices();
  }

  commands(): CommandDefinition[] {
    return this.o.commands.map((c) => c.definition);
  }

  async invoke(name: string, input: CommandInput, ctx: InvocationContext, target: ReplyTarget): Promise<CommandReply> {
    const command = this.commandsByName.get(name.replace(/^\//, ''));
    if (!command) return refuse(`Unknown command "/${name}". Try /styleclip-help.`);
    try {
      const reply = await command.run(parseInput(command.definition, input), ctx, this.services, target);
      if (reply.error) this.metrics.refusals.inc({ reason: name });
      return reply;
    } catch (err) {
      if (err instanceof CommandRefusal) {
        this.metrics.refusals.inc({ reason: 'usage' });
        return refuse(`${err.message} See /styleclip-help.`);
      }
      if (isRedisDown(err)) {
        this.metrics.refusals.inc({ reason: 'redis_down' }); // logged once per outage (RedisHealth), not per command
        return refuse(UNAVAILABLE);
      }
      this.log.error({ command: name, user: ctx.user.id, err: (err as Error).message }, 'command failed');
      return refuse('Sorry, something went wrong on our side; please try again shortly.');
    }
  }

  async autocomplete(name: string, option: string, partial: string, ctx: InvocationContext): Promise<string[]> {
    const command = this.commandsByName.get(name);
    if (!command?.autocomplete) return [];
    try {
      return await command.autocomplete(option, partial, ctx, this.services);
    } catch {
      return [];
    }
  }

  nudge(jobId: string, action: FollowUp, userId: string, dedupeKey: string, target: ReplyTarget, via: Via = 'reaction'): Promise<CommandReply | null> {
    return this.unlessRedisIsDown(() => this.nudgeNow(jobId, action, userId, dedupeKey, target, via));
  }

  cancel(jobId: string, userId: string, dedupeKey: string, via: Via = 'reaction'): Promise<CommandReply | null> {
    return this.unlessRedisIsDown(() => this.cancelNow(jobId, userId, dedupeKey, via));
  }

  /** A reaction or button while Redis is away gets the same "temporarily unavailable" as a command. */
  private async unlessRedisIsDown(run: () => Promise<CommandReply | null>): Promise<CommandReply | null> {
    try {
      return await run();
    } catch (err) {
      if (!isRedisDown(err)) throw err;
      this.metrics.refusals.inc({ reason: 'redis_down' });
      return refuse(UNAVAILABLE);
    }
  }

  private async nudgeNow(jobId: string, action: FollowUp, userId: string, dedupeKey: string, target: ReplyTarget, via: Via): Promise<CommandReply | null> {
    const data = await this.requestedBy(jobId, userId, dedupeKey, via, FOLLOW_UP_WORDS[action]);
    if (!data || 'text' in data) return data;
    const [settings, installed] = [await this.settings.get(data.scope), this.packs.get(data.pack)];
    const pack = installed && (await this.packs.view(installed, data.scope));
    if (!pack) return refuse(`This result was made with pack "${data.pack}", which is no longer installed.`);
    const hash = createHash('sha1').update(dedupeKey).digest('hex').slice(0, 16);
    const followUp = await this.followUp(data, action, settings, hash);
    if ('text' in followUp) return followUp;
    // The same edit, asked for again: every rule /styleclip applies holds (channels, blocked words, methods).
    const plan = planEdit(settings, pack, target.channelId, followUp.request);
    if ('refusal' in plan) return refuse(plan.refusal);
    const next: EditJobData = {
      ...data,
      jobId: `${data.platform}-n${hash}`,
      spec: plan.spec,
      source: followUp.source,
      target,
      submittedAt: Date.now(),
      parentJobId: jobId,
    };
    return this.submissions.submit(next);
  }

  private async cancelNow(jobId: string, userId: string, dedupeKey: string, via: Via): Promise<CommandReply | null> {
    const data = await this.requestedBy(jobId, userId, dedupeKey, via, 'delete it');
    if (!data || 'text' in data) return data;
    // ❌ on a photo job (waiting, running or done) deletes the photo with its crop and inversion.
    if (data.source.kind === 'photo') await deletePhoto(this.store, data.source.key);
    if ((await this.submissions.cancel(jobId)) !== 'finished') return { text: CANCELLED_MESSAGE, ephemeral: true };
    await this.store.set(keys.deleted(jobId), '1', this.o.resultTtlS);
    await this.submissions.deleteResult(jobId);
    return { text: 'Deleted.', ephemeral: true };
  }

  resultImage(jobId: string, maxBytes?: number, which: ResultImageKind = 'main'): Promise<ResultImage | null> {
    return resultImage(this.store, jobId, maxBytes, which);
  }

  /** An adapter that takes attachments registers how to download its platform's files (see PhotoFetcher). */
  setPhotoFetcher(platform: Platform, fetcher: PhotoFetcher): void {
    this.photos.setFetcher(platform, fetcher);
  }

  async previewImage(jobId: string): Promise<ResultImage | null> {
    const png = await this.store.get(keys.preview(jobId));
    return png ? { bytes: png, mime: 'image/png', filename: `${jobId}-preview.png` } : null;
  }

  onUpdate(platform: Platform, listener: (update: JobUpdate) => void | Promise<void>): () => void {
    return this.events.onUpdate(platform, async (u) => listener(u.status === 'completed' ? { ...u, ...(await this.presentation(u.jobId)) } : u));
  }

  async linkMessage(platform: Platform, messageKey: string, jobId: string): Promise<void> {
    await this.store.set(keys.link(platform, messageKey), jobId, this.o.resultTtlS);
    await this.store.push(keys.jobLinks(platform, jobId), messageKey, MAX_LINKS_PER_JOB, this.o.resultTtlS);
  }

  async jobForMessage(platform: Platform, messageKey: string): Promise<string | null> {
    return (await this.store.get(keys.link(platform, messageKey)))?.toString('utf8') ?? null;
  }

  messagesForJob(platform: Platform, jobId: string): Promise<string[]> {
    return this.store.list(keys.jobLinks(platform, jobId), MAX_LINKS_PER_JOB);
  }

  /** Prometheus text (refreshes the queue-depth gauge first). */
  async metricsText(): Promise<string> {
    try {
      const jobs = await this.queue.inFlight();
      this.metrics.queueDepth.set({ state: 'waiting' }, jobs.filter((j) => j.state === 'waiting').length);
      this.metrics.queueDepth.set({ state: 'active' }, jobs.filter((j) => j.state === 'active').length);
    } catch {
      // queue unreachable: keep the last values
    }
    return this.metrics.text();
  }

  /** First step of a shutdown, while the adapters still run: new jobs are refused from now on. */
  refuseNew(): void {
    this.submissions.refuseNew();
  }

  /**
   * After the workers of this process stopped: on the in-process queue the waiting jobs (which would be lost)
   * are failed with a message that says so; with Redis they stay queued for the next start or another worker.
   * Resolves once the replies under way are out.
   */
  async drain(): Promise<void> {
    this.refuseNew();
    if (!this.queue.durable) await this.submissions.failWaiting();
    await this.events.idle();
  }

  /** Replies being sent now (what a forced shutdown would abandon). */
  repliesUnderWay(): number {
    return this.events.underWay;
  }

  /** Redis as this process sees it (null in embedded mode): for /healthz. */
  redis(): { up: boolean; downForS: number } | null {
    const h = this.o.health;
    return h ? { up: h.up, downForS: Math.round(h.downForMs() / 1000) } : null;
  }

  /** One watchdog pass now (it runs every WATCHDOG_SWEEP_MS by itself). */
  sweepLostJobs(): Promise<void> {
    return this.watchdog?.sweep() ?? Promise.resolve();
  }

  /** Stops taking work, disconnects. */
  async close(): Promise<void> {
    this.refuseNew();
    this.watchdog?.close();
    this.events.close();
    await this.queue.close();
    await this.store.close();
  }

  /**
   * The end of a shutdown past its grace period (e.g. Redis unreachable, so drain()/close() never return):
   * refuses new work and drops the connections at once. The process is expected to exit.
   */
  async disconnect(): Promise<void> {
    this.refuseNew();
    this.watchdog?.close();
    this.events.close();
    this.queue.disconnect();
    await this.store.close();
  }

  /**
   * The job, when `userId` asked for it and `dedupeKey` is new (a platform may deliver a reaction twice); else null
   * (ignore) or the refusal to show. A reaction by someone else is ignored; a button press by them is answered.
   */
  private async requestedBy(jobId: string, userId: string, dedupeKey: string, via: Via, what: string): Promise<EditJobData | CommandReply | null> {
    const data = await getJSON<EditJobData>(this.store, keys.job(jobId));
    if (!data) return via === 'button' ? refuse(RESULT_GONE) : null; // expired (a reaction's link would be gone too)
    if (data.requesterId !== userId) return via === 'button' ? refuse(`Only the person who asked for this edit can ${what}.`) : null;
    if (!(await this.store.setNX(keys.nudge(dedupeKey), '1', this.o.resultTtlS))) return null;
    if (await this.store.get(keys.deleted(jobId))) return refuse(RESULT_GONE);
    return data;
  }

  /** How a finished result is shown: what it offers (see `followUp` for what each needs), and whether hidden. */
  private async presentation(jobId: string): Promise<Pick<JobUpdate, 'actions' | 'spoiler'>> {
    const data = await getJSON<EditJobData>(this.store, keys.job(jobId)).catch(() => null);
    if (!data) return { actions: ['cancel'] };
    // A trained mapper is used with /styleclip and removed with mapper-remove: nothing to do on its message.
    if (isTraining(data.spec)) return { actions: [] };
    const optimized = isOptimize(data.spec);
    // ↩'s own result is the original: nothing to nudge or go back to. An optimization always moved the face.
    const edited = isOptimize(data.spec) || data.spec.strength !== 0;
    const actions: ResultAction[] = [
      ...(edited ? (['stronger', 'weaker'] as const) : []),
      ...(data.source.kind === 'seed' ? (['reroll'] as const) : []),
      // An optimization has no strength 0 to go back with (followUp refuses ↩ on it).
      ...(edited && !optimized ? (['original'] as const) : []),
      'cancel',
    ];
    const spoiler = await this.settings.get(data.scope).then((s) => s.spoiler, () => false);
    return { actions, ...(spoiler ? { spoiler } : {}) };
  }

  /**
   * The request and source of a follow-up, or why there is none. On an optimize result ➕/➖ move the L2 pull
   * (plan-optimize.ts) with the steps capped by the server's current bound, 🎲 runs the same optimization on a
   * new face, and ↩ is refused: an optimization has no strength 0 to show the start with.
   */
  private async followUp(data: EditJobData, action: FollowUp, settings: ServerSettings, hash: string): Promise<{ request: EditRequest; source: JobSource } | CommandReply> {
    const spec = data.spec;
    if (isTraining(spec)) return refuse(`Nudges do not apply to a mapper training; try the mapper with /styleclip ${spec.prompt}.`);
    if (action === 'original' && isOptimize(spec)) {
      return refuse('↩ does not apply to method:optimize results (an optimization has no strength 0); run /styleclip with the same seed to see the face before the edit.');
    }
    if (action === 'reroll' && data.source.kind !== 'seed') return refuse('🎲 works on edits of a generated face; this result edits an earlier one.');
    // A seed from the dedupe key: a redelivered press asks for the same face.
    const newFace = (): JobSource => ({ kind: 'seed', seed: parseInt(hash.slice(0, 8), 16) % 2 ** 31 });
    if (isOptimize(spec)) {
      const again = { prompt: spec.prompt, method: 'optimize' as const, steps: Math.min(spec.steps, settings.optimizeStepsMax) };
      if (action === 'reroll') return { request: { ...again, l2Lambda: spec.l2Lambda }, source: newFace() };
      const l2Lambda = Math.min(OPTIMIZE_LAMBDA_MAX, nudgedL2(spec.l2Lambda, action as Nudge));
      if (l2Lambda === spec.l2Lambda) return refuse(`The L2 pull is already ${spec.l2Lambda}; a nudge cannot move it further.`);
      return { request: { ...again, l2Lambda }, source: data.source };
    }
    const { prompt, neutral, method, threshold } = spec;
    const same = (strength: number, source: JobSource) => ({ request: { prompt, neutral, method, strength, threshold }, source });
    if (action === 'stronger' || action === 'weaker') {
      const wanted = nudgedStrength(spec.strength, action);
      const strength = Math.min(settings.strengthMax, Math.max(settings.strengthMin, wanted));
      if (strength === spec.strength) {
        return refuse(`Strength is already ${strength}, this server's ${action === 'stronger' ? 'most' : 'least'} for a nudge.`);
      }
      return same(strength, data.source);
    }
    if (action === 'reroll') return same(spec.strength, newFace());
    // ↩ the face before any edit: strength 0 on the seed the result (or the chain it continues) started from;
    // for a photo, its reconstruction by the encoder pasted back (from the stored inversion).
    if (data.source.kind === 'photo') return same(0, data.source);
    const meta = data.source.kind === 'seed' ? null : await getJSON<ResultMeta>(this.store, keys.resultMeta(data.jobId));
    if (meta?.photo) return same(0, { kind: 'photo', key: meta.photo.key });
    const seed = data.source.kind === 'seed' ? data.source.seed : meta?.seed;
    if (seed === undefined) return refuse(RESULT_GONE);
    return same(0, { kind: 'seed', seed });
  }

  private commandServices(): CommandServices {
    const { store, queue } = this;
    return {
      settings: this.settings,
      packs: this.packs,
      scope: scopeOf,
      serverSettings: async (ctx) => {
        const settings = await this.settings.get(scopeOf(ctx));
        // The server view: the pack's mappers plus this server's own (PackCatalog.view).
        return { settings, pack: await this.packs.view(this.packs.get(settings.pack) ?? this.packs.defaultPack, scopeOf(ctx)) };
      },
      submit: (data) => this.submissions.submit(data),
      job: (jobId) => getJSON<EditJobData>(store, keys.job(jobId)),
      result: (jobId) => getJSON<ResultMeta>(store, keys.resultMeta(jobId)),
      jobForMessage: (ctx, messageKey) => this.jobForMessage(ctx.platform, messageKey),
      inFlight: () => queue.inFlight(),
      recentResults: async (ctx) => store.list(keys.recent(ctx.platform, ctx.user.id), 25),
      cancel: (jobId) => this.submissions.cancel(jobId),
      commands: () => this.commands(),
      jobId: (ctx) => makeJobId(ctx.platform, ctx.requestId),
      acceptPhoto: (ctx, attachment) => this.photos.accept(ctx.platform, attachment),
      dropPhoto: (key) => this.photos.drop(key),
    };
  }
}
