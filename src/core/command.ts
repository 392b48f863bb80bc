// What a command file in top-level commands/ exports, and the services the core lends it.
import type { Attachment, CommandDefinition, CommandReply, InvocationContext, OptionValue, ReplyTarget } from './types.ts';
import type { PackCatalog } from '../engine/catalog.ts';
import type { PackSummary } from '../engine/types.ts';
import type { ServerSettings, SettingsService } from '../state/settings.ts';
import type { EditJobData, ResultMeta } from '../jobs/types.ts';
import type { InFlightJob } from '../jobs/queue.ts';

export type OptionValues = Record<string, OptionValue>;

export interface CommandArgs {
  subcommand?: string;
  options: OptionValues;
}

export interface CommandServices {
  settings: SettingsService;
  packs: PackCatalog;
  /** `<platform>:<serverId or dm>`. */
  scope(ctx: InvocationContext): string;
  /** Settings of the invoking server, and its pack. */
  serverSettings(ctx: InvocationContext): Promise<{ settings: ServerSettings; pack: PackSummary }>;
  /** Caps, idempotency, queueing: the reply says the position, or why the job was refused. */
  submit(data: EditJobData): Promise<CommandReply>;
  /** A stored job record (any state; gone after the result TTL). */
  job(jobId: string): Promise<EditJobData | null>;
  result(jobId: string): Promise<ResultMeta | null>;
  jobForMessage(ctx: InvocationContext, messageKey: string): Promise<string | null>;
  inFlight(): Promise<InFlightJob[]>;
  /** The invoking user's latest finished job ids, newest first. */
  recentResults(ctx: InvocationContext): Promise<string[]>;
  cancel(jobId: string): Promise<'cancelled' | 'cancelling' | 'finished'>;
  commands(): CommandDefinition[];
  /** Per-run job id: `<platform>-<requestId>` made safe for BullMQ. */
  jobId(ctx: InvocationContext): string;
  /**
   * A user's photo checked (size from the platform's metadata before download, then format and pixel count
   * from the header) and stored under a new key with the result TTL; or why not, in one line.
   */
  acceptPhoto(ctx: InvocationContext, attachment: Attachment): Promise<{ key: string; animated: boolean } | { refusal: string }>;
  /** Deletes a stored photo (and its inversion). */
  dropPhoto(key: string): Promise<void>;
}

export interface Command {
  definition: CommandDefinition;
  run(args: CommandArgs, ctx: InvocationContext, services: CommandServices, target: ReplyTarget): Promise<CommandReply>;
  /** Suggestions for an option marked `autocomplete`. */
  autocomplete?(option: string, partial: string, ctx: InvocationContext, services: CommandServices): Promise<string[]>;
}

/** Thrown while reading a command's options (bad value, unknown option…): the user reads its message. */
export class CommandRefusal extends Error {
  override name = 'CommandRefusal';
}

export function refuse(text: string): CommandReply {
  return { text, ephemeral: true, error: true };
}
