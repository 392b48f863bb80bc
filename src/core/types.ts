// Contract between the platform adapters (Discord, Slack, playground) and the bot core.
// Adapters translate platform events into these shapes and back; they never run models.

import type { Platform, ReplyTarget, JobStatus } from '../jobs/types.ts';

export type { Platform, ReplyTarget, JobStatus } from '../jobs/types.ts';
export { isFinal, CANCELLED_MESSAGE } from '../jobs/types.ts';

/** Who invoked, where. `serverId` is the Discord guild / Slack team; null in a DM. */
export interface InvocationContext {
  platform: Platform;
  serverId: string | null;
  channelId: string;
  user: { id: string; name?: string };
  /** What the platform says about the user (Discord ManageGuild, Slack is_admin/is_owner, config list). */
  isPlatformAdmin: boolean;
  /** A platform id unique to this invocation (interaction id, trigger id…): makes job ids idempotent. */
  requestId: string;
  /** The platform message this command replies to (Slack thread parent ts, Discord referenced message id, playground
   * message id), if any: `/styleclip` then edits that message's result. Same key as `linkMessage`. */
  replyToMessageKey?: string;
}

export type OptionType = 'string' | 'number' | 'integer' | 'boolean' | 'attachment';

/**
 * A file attached to a command: a Discord attachment option, a Slack file, a playground upload. Adapters
 * give `bytes` when they have them, else a platform-hosted `url` that their PhotoFetcher downloads; `size`
 * is what the platform reports, checked before anything is downloaded.
 */
export interface Attachment {
  url?: string;
  bytes?: Uint8Array;
  size: number;
  contentType?: string;
  name?: string;
}

export type OptionValue = string | number | boolean | Attachment;

/**
 * Downloads users' files for the core, implemented by each adapter that takes attachments: only URLs its
 * platform hosts (Discord's CDN, Slack's files API with the bot token), at most `maxBytes`.
 */
export interface PhotoFetcher {
  /** Whether `url` is one of this platform's file URLs (anything else is refused, never fetched). */
  hosts(url: string): boolean;
  /** The file's bytes; rejects past `maxBytes` without reading further. */
  fetch(url: string, maxBytes: number): Promise<Uint8Array>;
}

export interface CommandOption {
  name: string;
  description: string;
  type: OptionType;
  required?: boolean;
  choices?: { name: string; value: string | number }[];
  min?: number;
  max?: number;
  maxLength?: number;
  /** Suggestions come from `BotCore.autocomplete`. */
  autocomplete?: boolean;
}

export interface SubcommandDefinition {
  name: string;
  description: string;
  options: CommandOption[];
  /** The option that takes the rest of a free-text line, as CommandDefinition's. */
  freeTextOption?: string;
  /** Its reply is posted in the channel, where its job's progress and result follow (an admin's long job). */
  publicReply?: boolean;
}

/** Whether `subcommand` of `def` posts its reply in the channel, even in a command whose replies are private. */
export function repliesPublicly(def: CommandDefinition, subcommand: string | undefined): boolean {
  return !!def.subcommands?.find((s) => s.name === subcommand)?.publicReply;
}

export interface CommandDefinition {
  /** e.g. "styleclip", "styleclip-admin". */
  name: string;
  description: string;
  /** Sub-commands, for admin-style commands (Discord subcommands); leaf commands use `options`. */
  subcommands?: SubcommandDefinition[];
  options: CommandOption[];
  /** Requires admin rights (Discord: default_member_permissions = ManageGuild; re-checked by the core). */
  adminOnly?: boolean;
  /** The option that takes the rest of a free-text line ("curly hair" in `/styleclip curly hair`). */
  freeTextOption?: string;
  /** Replies are only for the invoker (help, info): Discord defers these ephemerally (admin commands always are). */
  privateReply?: boolean;
}

/** Input of one command: typed options (Discord) or free text (Slack, playground), never both. */
export type CommandInput =
  | { kind: 'options'; subcommand?: string; options: Record<string, OptionValue> }
  /** Free text; files sent with it fill the command's attachment options in order. */
  | { kind: 'text'; text: string; attachments?: Attachment[] };

/** What the user sees right away. `error` replies are shown as errors (ephemeral / red embed). */
export interface CommandReply {
  text: string;
  ephemeral?: boolean;
  error?: boolean;
  /** Set when a job was queued: the adapter shows progress and the result for it. */
  job?: { id: string; position: number };
}

export interface JobUpdate {
  jobId: string;
  status: JobStatus;
  /** Queue position while queued (1 = next). */
  position?: number;
  /** 0..100 while running. */
  progress?: number;
  /** A small progress image is available now (BotCore.previewImage): optimize jobs, while running. */
  preview?: boolean;
  /** Human-readable caption (completed) or error message (failed). */
  text: string;
  /** Completed photo edits: the result also has an aligned before → after image (`resultImage(id, max, 'before-after')`). */
  beforeAfter?: boolean;
  target: ReplyTarget;
  requesterId: string;
  /** Completed only: what the result offers, in the order its buttons show (🎲 only for a face made from a seed). */
  actions?: ResultAction[];
  /** Completed only: the server wants results hidden until asked for (its `spoiler` setting). */
  spoiler?: boolean;
}

export interface ResultImage {
  bytes: Buffer;
  mime: 'image/png' | 'image/webp' | 'image/jpeg';
  filename: string;
}

export type ResultImageKind = 'main' | 'before-after';

/** A ➕/➖ on a result: the same edit again, stronger or weaker. */
export type Nudge = 'stronger' | 'weaker';

/**
 * What a reaction or button on a result asks for, besides ❌: a nudge, 🎲 `reroll` (the same edit on a new random
 * face; results that started from a seed only), or ↩ `original` (the unedited face: the same edit at strength 0 on
 * the face the result started from).
 */
export type FollowUp = Nudge | 'reroll' | 'original';

/**
 * How a request on a result arrived. A reaction by someone other than the requester is ignored (reactions are
 * also just reactions); a button press always gets an answer (Discord and Slack wait for one).
 */
export type Via = 'reaction' | 'button';

/** What a result offers (its buttons; also its reactions): a follow-up, or `cancel` (❌: cancel, or delete the result). */
export type ResultAction = FollowUp | 'cancel';

/** Said when a result's job record or image is no longer there (❌ deleted it, or it expired). */
export const RESULT_GONE = 'This result is gone: it was deleted or has expired.';

/** The bot core as the adapters see it. */
export interface BotCore {
  commands(): CommandDefinition[];
  invoke(name: string, input: CommandInput, ctx: InvocationContext, target: ReplyTarget): Promise<CommandReply>;
  autocomplete(name: string, option: string, partial: string, ctx: InvocationContext): Promise<string[]>;
  /**
   * A ➕/➖ (🎲, ↩) on a result: planned like `/styleclip` (the server's rules apply), queued as a new job replying
   * to `target`. Null (ignore it) for a repeated `dedupeKey`, and for a reaction by anyone but the requester; a
   * button press by someone else is refused. Refused with RESULT_GONE once the result was deleted (or, for a
   * button, expired).
   */
  nudge(jobId: string, action: FollowUp, userId: string, dedupeKey: string, target: ReplyTarget, via?: Via): Promise<CommandReply | null>;
  /**
   * A ❌ on a job: cancels it while it waits or runs (the reply's text is then CANCELLED_MESSAGE), deletes its
   * result once it is finished. Who may, dedupe and RESULT_GONE as for `nudge`; adapters remove what is left of a
   * deleted result on either answer.
   */
  cancel(jobId: string, userId: string, dedupeKey: string, via?: Via): Promise<CommandReply | null>;
  /**
   * Image of a completed job, re-encoded (WebP, JPEG, smaller) until it fits `maxBytes`. `which`: the main
   * image (for a photo: the whole photo with the edited face), or a photo edit's aligned before → after.
   */
  resultImage(jobId: string, maxBytes?: number, which?: ResultImageKind): Promise<ResultImage | null>;
  /** The latest small progress image of a running job (optimize), or null. Optional: older cores lack it. */
  previewImage?(jobId: string): Promise<ResultImage | null>;
  /** How to download this platform's attached files (adapters that take photos). Optional: stub cores lack it. */
  setPhotoFetcher?(platform: Platform, fetcher: PhotoFetcher): void;
  /** Job updates for one platform; returns an unsubscribe function. */
  onUpdate(platform: Platform, listener: (update: JobUpdate) => void | Promise<void>): () => void;
  /** Remember that a platform message shows a job, so reactions on it find the job (persists with Redis). */
  linkMessage(platform: Platform, messageKey: string, jobId: string): Promise<void>;
  jobForMessage(platform: Platform, messageKey: string): Promise<string | null>;
  /** The message keys linked to a job, newest first (what ❌ removes; persists with Redis like the links). */
  messagesForJob(platform: Platform, jobId: string): Promise<string[]>;
}

/** What an adapter's start function returns (`startDiscordAdapter(core, env)`, `startSlackAdapter(core, env)`). */
export interface AdapterHandle {
  close(): Promise<void>;
}
