// A scriptable BotCore for the adapter's edge cases (slow invoke, scripted job updates, failures);
// the acceptance tests use the real core.
import type { BotCore, CommandDefinition, CommandInput, CommandReply, InvocationContext, JobUpdate, Nudge, ReplyTarget, ResultImage } from '../../../src/core/types.ts';

type Listener = (u: JobUpdate) => void | Promise<void>;

export const STUB_COMMANDS: CommandDefinition[] = [
  {
    name: 'styleclip',
    description: 'Edit a face with a text prompt',
    freeTextOption: 'prompt',
    options: [
      { name: 'strength', description: 'How far to push', type: 'number', min: -10, max: 10 },
      { name: 'prompt', description: 'What to change, e.g. curly hair', type: 'string', required: true, maxLength: 200, autocomplete: true },
      { name: 'method', description: 'global or mapper', type: 'string', choices: [{ name: 'global', value: 'global' }, { name: 'mapper', value: 'mapper' }] },
      { name: 'seed', description: 'Face seed', type: 'integer', min: 0 },
    ],
  },
  {
    name: 'styleclip-settings',
    description: 'Server settings',
    adminOnly: true,
    options: [],
    subcommands: [{ name: 'set', description: 'Change a setting', options: [{ name: 'max-strength', description: 'Upper bound', type: 'number', required: true }] }],
  },
];

export class StubCore implements BotCore {
  readonly invocations: { name: string; input: CommandInput; ctx: InvocationContext; target: ReplyTarget }[] = [];
  readonly nudges: { jobId: string; nudge: Nudge | 'cancel'; userId: string; dedupeKey: string }[] = [];
  readonly imageRequests: { jobId: string; maxBytes?: number }[] = [];
  readonly links = new Map<string, string>();
  /** Extra time `invoke` takes (a full queue, a slow Redis). */
  invokeDelayMs = 0;
  /** When set, `invoke` throws this. */
  invokeError: Error | undefined;
  /** Image bytes per call of resultImage, by maxBytes. */
  image: (jobId: string, maxBytes?: number) => ResultImage | null = (jobId) => ({ bytes: Buffer.from(`png:${jobId}`), mime: 'image/png', filename: 'styleclip.png' });
  private listeners = new Set<Listener>();
  private jobs = new Map<string, { requester: string; strength: number; target: ReplyTarget }>();
  private dedupe = new Map<string, string>();
  private n = 0;

  commands(): CommandDefinition[] { return STUB_COMMANDS; }

  async invoke(name: string, input: CommandInput, ctx: InvocationContext, target: ReplyTarget): Promise<CommandReply> {
    this.invocations.push({ name, input, ctx, target });
    if (this.invokeDelayMs) await new Promise((r) => setTimeout(r, this.invokeDelayMs));
    if (this.invokeError) throw this.invokeError;
    if (name === 'styleclip-settings') {
      if (!ctx.isPlatformAdmin) return { text: 'Only server admins (Manage Server) can change settings.', error: true, ephemeral: true };
      return { text: 'Settings saved.', ephemeral: true };
    }
    const options = input.kind === 'options' ? input.options : {};
    if (String(options.prompt ?? '').includes('banned')) return { text: 'That prompt is not allowed here.', error: true, ephemeral: true };
    const id = `discord:${ctx.requestId}`;
    this.jobs.set(id, { requester: ctx.user.id, strength: Number(options.strength ?? 4), target });
    return { text: `Queued: ${String(options.prompt)}`, job: { id, position: 1 } };
  }

  async autocomplete(_name: string, _option: string, partial: string): Promise<string[]> {
    return ['curly hair', 'bob cut', 'mohawk'].filter((s) => s.startsWith(partial));
  }

  async nudge(jobId: string, nudge: Nudge, userId: string, dedupeKey: string, target: ReplyTarget): Promise<CommandReply | null> {
    this.nudges.push({ jobId, nudge, userId, dedupeKey });
    const job = this.jobs.get(jobId);
    if (!job || job.requester !== userId) return null;
    const existing = this.dedupe.get(dedupeKey);
    if (existing) return { text: 'Already re-running.', job: { id: existing, position: 1 } };
    const id = `${jobId}:${++this.n}`;
    this.dedupe.set(dedupeKey, id);
    this.jobs.set(id, { requester: userId, strength: job.strength + (nudge === 'stronger' ? 1 : -1), target });
    return { text: `Re-running ${nudge}…`, job: { id, position: 1 } };
  }

  async cancel(jobId: string, userId: string, dedupeKey: string): Promise<CommandReply | null> {
    this.nudges.push({ jobId, nudge: 'cancel', userId, dedupeKey });
    const job = this.jobs.get(jobId);
    if (!job || job.requester !== userId) return null;
    return { text: 'Deleted.' };
  }

  strength(jobId: string): number | undefined { return this.jobs.get(jobId)?.strength; }

  async resultImage(jobId: string, maxBytes?: number): Promise<ResultImage | null> {
    this.imageRequests.push({ jobId, maxBytes });
    return this.image(jobId, maxBytes);
  }

  onUpdate(_platform: string, listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Sends a job update to the adapter, as the queue would. */
  emit(jobId: string, u: Partial<JobUpdate> & Pick<JobUpdate, 'status'>): void {
    const job = this.jobs.get(jobId);
    if (!job) throw new Error(`no job ${jobId}`);
    const update: JobUpdate = { jobId, text: '', target: job.target, requesterId: job.requester, ...u };
    for (const l of this.listeners) void l(update);
  }

  /** Completes a job with a caption that carries its strength. */
  complete(jobId: string): void {
    this.emit(jobId, { status: 'completed', text: `curly hair · global · strength ${this.strength(jobId)} · seed 1` });
  }

  async linkMessage(_p: string, key: string, jobId: string): Promise<void> { this.links.set(key, jobId); }
  async messagesForJob(_p: string, jobId: string): Promise<string[]> { return [...this.links].filter(([, j]) => j === jobId).map(([k]) => k).reverse(); }
  async jobForMessage(_p: string, key: string): Promise<string | null> { return this.links.get(key) ?? null; }
}
