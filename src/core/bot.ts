// The bot core: what the adapters talk to (BotCore, types.ts). A façade over the commands, the submissions
// (caps, queueing, cancelling), the job events (progress and final replies) and the result images. It is
// handed its store, queue and commands; the runtime decides whether they are Redis or in-process, and
// whether a worker runs beside it.
import { createHash } from 'node:crypto';
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import type { PackCatalog } from '../engine/catalog.ts';
import type { JobQueue } from '../jobs/queue.ts';
import type { EditJobData, JobSpec, OptimizeSpec, Platform, ResultMeta } from '../jobs/types.ts';
import { getJSON, isRedisDown, type Store } from '../state/store.ts';
import { keys } from '../state/keys.ts';
import { OPTIMIZE_LAMBDA_MAX, SettingsService } from '../state/settings.ts';
import { nudgedStrength } from './captions.ts';
import { CommandRefusal, refuse, type Command, type CommandServices } from './command.ts';
import { JobEvents } from './job-events.ts';
import { parseInput } from './parse.ts';
import { planEdit } from './plan-edit.ts';
import { nudgedL2 } from './plan-optimize.ts';
import { resultImage } from './result-image.ts';
import { Submissions, UNAVAILABLE } from './submissions.ts';
import type {
  BotCore,
  CommandDefinition,
  CommandInput,
  CommandReply,
  InvocationContext,
  JobUpdate,
  Nudge,
  ReplyTarget,
  ResultImage,
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
}

/** BullMQ ids may not contain ':' nor be all digits; ours are `<platform>-<requestId>`. */
export function makeJobId(platform: Platform, requestId: string): string {
  return `${platform}-${requestId.replace(/[^A-Za-z0-9_.-]/g, '_')}`.slice(0, 120);
}

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
  private readonly commandsByName: Map<string, Command>;
  private readonly services: CommandServices;

  constructor(private readonly o: BotOptions) {
    ({ packs: this.packs, queue: this.queue, store: this.store, metrics: this.metrics, log: this.log } = o);
    this.settings = new SettingsService(o.store, o.log);
    this.events = new JobEvents(o);
    this.submissions = new Submissions({ ...o, settings: this.settings, events: this.events });
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
      this.log.error({ command: name, user: ctx.user.id, err: (err as Error).message }, 'command failed');
      if (isRedisDown(err)) return refuse(UNAVAILABLE);
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

  async nudge(jobId: string, nudge: Nudge, userId: string, dedupeKey: string, target: ReplyTarget): Promise<CommandReply | null> {
    const data = await this.requestedBy(jobId, userId, dedupeKey);
    if (!data) return null;
    const [settings, pack] = [await this.settings.get(data.scope), this.packs.get(data.pack)];
    if (!pack) return refuse(`This result was made with pack "${data.pack}", which is no longer installed.`);
    if (data.spec.method === 'optimize') return this.nudgeOptimize(data, jobId, nudge, dedupeKey, target);
    const wanted = nudgedStrength(data.spec.strength, nudge);
    const strength = Math.min(settings.strengthMax, Math.max(settings.strengthMin, wanted));
    if (strength === data.spec.strength) {
      return refuse(`Strength is already ${strength}, this server's ${nudge === 'stronger' ? 'most' : 'least'} for a nudge.`);
    }
    // The same edit, asked for again: every rule /styleclip applies holds (channels, blocked words, methods).
    const { prompt, neutral, method, threshold } = data.spec;
    const plan = planEdit(settings, pack, target.channelId, { prompt, neutral, method, strength, threshold });
    if ('refusal' in plan) return refuse(plan.refusal);
    return this.submitNudge(data, jobId, plan.spec, dedupeKey, target);
  }

  /** ➕/➖ on an optimize result: the same run from the same start, with a weaker (➕) or stronger (➖) L2 pull. */
  private async nudgeOptimize(data: EditJobData, jobId: string, nudge: Nudge, dedupeKey: string, target: ReplyTarget): Promise<CommandReply> {
    const spec = data.spec as OptimizeSpec;
    const settings = await this.settings.get(data.scope);
    const pack = this.packs.get(data.pack)!;
    const l2Lambda = Math.min(OPTIMIZE_LAMBDA_MAX, nudgedL2(spec.l2Lambda, nudge));
    if (l2Lambda === spec.l2Lambda) return refuse(`The L2 pull is already ${spec.l2Lambda}; a nudge cannot move it further.`);
    const plan = planEdit(settings, pack, target.channelId, { prompt: spec.prompt, method: 'optimize', steps: Math.min(spec.steps, settings.optimizeStepsMax), l2Lambda });
    if ('refusal' in plan) return refuse(plan.refusal);
    return this.submitNudge(data, jobId, plan.spec, dedupeKey, target);
  }

  private submitNudge(data: EditJobData, jobId: string, spec: JobSpec, dedupeKey: string, target: ReplyTarget): Promise<CommandReply> {
    const hash = createHash('sha1').update(dedupeKey).digest('hex').slice(0, 16);
    const next: EditJobData = { ...data, jobId: `${data.platform}-n${hash}`, spec, target, submittedAt: Date.now(), parentJobId: jobId };
    return this.submissions.submit(next);
  }

  async cancel(jobId: string, userId: string, dedupeKey: string): Promise<CommandReply | null> {
    if (!(await this.requestedBy(jobId, userId, dedupeKey))) return null;
    if ((await this.submissions.cancel(jobId)) !== 'finished') return { text: 'Cancelled.', ephemeral: true };
    await this.submissions.deleteResult(jobId);
    return { text: 'Deleted.', ephemeral: true };
  }

  resultImage(jobId: string, maxBytes?: number): Promise<ResultImage | null> {
    return resultImage(this.store, jobId, maxBytes);
  }

  async previewImage(jobId: string): Promise<ResultImage | null> {
    const png = await this.store.get(keys.preview(jobId));
    return png ? { bytes: png, mime: 'image/png', filename: `${jobId}-preview.png` } : null;
  }

  onUpdate(platform: Platform, listener: (update: JobUpdate) => void | Promise<void>): () => void {
    return this.events.onUpdate(platform, listener);
  }

  async linkMessage(platform: Platform, messageKey: string, jobId: string): Promise<void> {
    await this.store.set(keys.link(platform, messageKey), jobId, this.o.resultTtlS);
  }

  async jobForMessage(platform: Platform, messageKey: string): Promise<string | null> {
    return (await this.store.get(keys.link(platform, messageKey)))?.toString('utf8') ?? null;
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

  /** Stops taking work, disconnects. */
  async close(): Promise<void> {
    this.refuseNew();
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
    this.events.close();
    this.queue.disconnect();
    await this.store.close();
  }

  /** The job, when `userId` asked for it and `dedupeKey` is new (a platform may deliver a reaction twice). */
  private async requestedBy(jobId: string, userId: string, dedupeKey: string): Promise<EditJobData | null> {
    const data = await getJSON<EditJobData>(this.store, keys.job(jobId));
    if (!data || data.requesterId !== userId) return null;
    if (!(await this.store.setNX(keys.nudge(dedupeKey), '1', this.o.resultTtlS))) return null;
    return data;
  }

  private commandServices(): CommandServices {
    const { store, queue } = this;
    return {
      settings: this.settings,
      packs: this.packs,
      scope: scopeOf,
      serverSettings: async (ctx) => {
        const settings = await this.settings.get(scopeOf(ctx));
        return { settings, pack: this.packs.get(settings.pack) ?? this.packs.defaultPack };
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
    };
  }
}
