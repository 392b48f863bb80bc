// A small, protocol-level fake of Discord for end-to-end tests of the real discord.js client:
// REST v10 (gateway info, interaction callbacks, webhook and channel message edits with multipart
// uploads, reactions, command registration) and the gateway WebSocket (HELLO, IDENTIFY → READY +
// GUILD_CREATE, HEARTBEAT_ACK, RESUME, dispatches). It enforces the rules a bot gets wrong in
// production: the 3 s callback window (10062), single acknowledgement (40060), 15 min webhook tokens
// (50027), attachment size limits (40005), permissions (50013), deleted channels (10003), and 429s.
// Why not an npm fake: discord-digital-twin (the only one published) is a 0.1 release built on
// Prisma + libsql and has no reactions; this file is all the protocol the tests need.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Server as NetServer } from 'node:net';
import { EventEmitter } from 'node:events';
import { WebSocketServer, type WebSocket } from 'ws';

const DISCORD_EPOCH = 1420070400000n;
let increment = 0n;
/** A real snowflake (17–19 digits), so discord.js' timestamps and REST buckets work as in production. */
export function snowflake(at = Date.now()): string {
  increment = (increment + 1n) % 4096n;
  return (((BigInt(at) - DISCORD_EPOCH) << 22n) | increment).toString();
}

/** Listens on a free 127.0.0.1 port; resolves with the port. */
export async function listenLocal(server: Server | NetServer): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

export const Permission = { ManageGuild: 1n << 5n, AddReactions: 1n << 6n, SendMessages: 1n << 11n, ReadMessageHistory: 1n << 16n, UseApplicationCommands: 1n << 31n };
const MEMBER_PERMISSIONS = Permission.SendMessages | Permission.AddReactions | Permission.ReadMessageHistory | Permission.UseApplicationCommands;
const PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15);
const INTENT_GUILD_MESSAGE_REACTIONS = 1 << 10;
const INTENT_DIRECT_MESSAGE_REACTIONS = 1 << 13;
const EPHEMERAL = 1 << 6;
const LOADING = 1 << 7;

export interface FakeUser { id: string; username: string; bot?: boolean }
export interface FakeAttachment { id: string; filename: string; size: number; contentType: string; data: Buffer }
export interface FakeMessage {
  id: string;
  channelId: string;
  authorId: string;
  content: string;
  embeds: Record<string, unknown>[];
  attachments: FakeAttachment[];
  flags: number;
  /** emoji → user ids */
  reactions: Map<string, string[]>;
  deleted: boolean;
  /** Action rows of the message's buttons (message components), as the bot last set them. */
  components: FakeActionRow[];
  /** Every version of the message, oldest first (content, attachment names, via which route). */
  history: { content: string; attachments: string[]; embeds: number; via: 'callback' | 'webhook' | 'channel' }[];
}
export interface FakeButton { type: 2; style: number; custom_id?: string; url?: string; label?: string; emoji?: { name: string }; disabled?: boolean }
export interface FakeActionRow { type: 1; components: FakeButton[] }
export interface FakeChannel { id: string; type: number; guildId: string | null; parentId?: string; recipientId?: string; botCanSend: boolean; deleted: boolean }
export interface RequestRecord { method: string; route: string; status: number; at: number; body?: unknown }
interface Interaction { id: string; token: string; createdAt: number; acked: boolean; tokenValid: boolean; messageId?: string; channelId: string; callbacks: { type: number; data?: unknown; at: number; status: number }[]; kind: number; payload?: Record<string, unknown> }

export interface SlashCommandOptions {
  user: FakeUser;
  channelId: string;
  name: string;
  subcommand?: string;
  options?: Record<string, string | number | boolean>;
  /** Member permissions in a guild (default: an ordinary member). */
  permissions?: bigint;
  attachmentSizeLimit?: number;
  /** Back-dates the interaction's snowflake, as if the interaction was created this many ms ago. */
  ageMs?: number;
  /** Marks an option as focused and sends an autocomplete interaction instead. */
  focused?: string;
  /** Attachment options (type 11): files the user attaches, resolved in `data.resolved.attachments`. */
  attachments?: Record<string, UserFile>;
}

/** A file a user attaches: served on the fake's CDN route unless `url` points elsewhere; `size` defaults to the data's. */
export interface UserFile { filename: string; contentType?: string; data: Buffer; size?: number; url?: string }

export class FakeDiscord extends EventEmitter {
  readonly botToken: string;
  readonly bot: FakeUser;
  readonly applicationId: string;
  readonly guildId = snowflake();
  readonly channels = new Map<string, FakeChannel>();
  readonly messages = new Map<string, FakeMessage>();
  readonly requests: RequestRecord[] = [];
  readonly interactions = new Map<string, Interaction>();
  /** Registered commands: key "global" or the guild id. */
  readonly commands = new Map<string, Record<string, unknown>[]>();
  /** Intents of the last IDENTIFY. */
  identifiedIntents = 0;
  textChannelId = '';
  /** Upload limit per file (the channel's `attachment_size_limit`): 10 MiB unless a test lowers it. */
  sizeLimit = 10 * 1024 * 1024;
  threadId = '';
  /** Files users attached to commands, by attachment id (served at `/attachments/{id}/{filename}`, like Discord's CDN). */
  readonly userFiles = new Map<string, FakeAttachment>();
  /** Downloads of users' attached files from the CDN route. */
  cdnDownloads = 0;
  private server: Server;
  private wss = new WebSocketServer({ noServer: true });
  private sockets = new Set<WebSocket>();
  private seq = 0;
  private rateLimits: { method: string; pattern: RegExp; retryAfter: number; count: number }[] = [];
  private latencies: { pattern: RegExp; ms: number }[] = [];
  port = 0;

  constructor(opts: { token?: string } = {}) {
    super();
    this.botToken = opts.token ?? 'fake-bot-token';
    this.applicationId = snowflake();
    this.bot = { id: this.applicationId, username: 'StyleCLIP', bot: true };
    this.textChannelId = this.addChannel({ type: 0, guildId: this.guildId }).id;
    this.threadId = this.addChannel({ type: 11, guildId: this.guildId, parentId: this.textChannelId }).id;
    this.server = createServer((req, res) => void this.handle(req, res));
    this.server.on('upgrade', (req, socket, head) => this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws, req)));
  }

  get apiBase(): string { return `http://127.0.0.1:${this.port}/api`; }
  /** The fake's stand-in for cdn.discordapp.com (same origin as the API). */
  get cdnBase(): string { return `http://127.0.0.1:${this.port}`; }

  async start(): Promise<this> {
    this.port = await listenLocal(this.server);
    return this;
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  addChannel(c: { type: number; guildId: string | null; parentId?: string; recipientId?: string }): FakeChannel {
    const channel: FakeChannel = { id: snowflake(), botCanSend: true, deleted: false, ...c };
    this.channels.set(channel.id, channel);
    return channel;
  }

  /** A DM channel between the bot and `user` (type 1). */
  dmChannel(user: FakeUser): FakeChannel {
    for (const c of this.channels.values()) if (c.type === 1 && c.recipientId === user.id) return c;
    return this.addChannel({ type: 1, guildId: null, recipientId: user.id });
  }

  /** The next `count` requests matching method + path answer 429 with `retryAfter` seconds. */
  rateLimit(method: string, pattern: RegExp, retryAfter = 0.3, count = 1): void {
    this.rateLimits.push({ method, pattern, retryAfter, count });
  }

  /** Requests matching `pattern` take `ms` longer (a slow network or a slow Discord). */
  delay(pattern: RegExp, ms: number): void { this.latencies.push({ pattern, ms }); }

  /** Invalidates every interaction token, as Discord does after 15 minutes. */
  expireTokens(): void { for (const i of this.interactions.values()) i.tokenValid = false; }

  // ── gateway ──────────────────────────────────────────────────────────────────────────────

  private onSocket(ws: WebSocket, req: IncomingMessage): void {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.searchParams.get('v') !== '10' || url.searchParams.get('encoding') !== 'json') {
      ws.close(4012, 'Invalid API version or encoding');
      return;
    }
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    ws.send(JSON.stringify({ op: 10, d: { heartbeat_interval: 41250 }, s: null, t: null }));
    ws.on('message', (raw) => {
      const msg = JSON.parse(String(raw)) as { op: number; d: any };
      if (msg.op === 1) ws.send(JSON.stringify({ op: 11, d: null, s: null, t: null }));
      else if (msg.op === 2) this.identify(ws, msg.d);
      else if (msg.op === 6) this.sendTo(ws, 'RESUMED', {});
    });
  }

  private identify(ws: WebSocket, d: { token: string; intents: number }): void {
    if (d.token !== this.botToken && d.token !== `Bot ${this.botToken}`) return void ws.close(4004, 'Authentication failed.');
    if (d.intents & PRIVILEGED_INTENTS) return void ws.close(4014, 'Disallowed intent(s).');
    this.identifiedIntents = d.intents;
    this.sendTo(ws, 'READY', {
      v: 10,
      user: { id: this.bot.id, username: this.bot.username, discriminator: '0', global_name: null, avatar: null, bot: true, flags: 0 },
      guilds: [{ id: this.guildId, unavailable: true }],
      session_id: snowflake(),
      resume_gateway_url: `ws://127.0.0.1:${this.port}`,
      shard: [0, 1],
      application: { id: this.applicationId, flags: 0 },
    });
    const channels = [...this.channels.values()].filter((c) => c.guildId === this.guildId && !c.deleted);
    this.sendTo(ws, 'GUILD_CREATE', {
      id: this.guildId, name: 'Test Server', icon: null, owner_id: snowflake(), unavailable: false, member_count: 3,
      large: false, joined_at: new Date().toISOString(), features: [], emojis: [], stickers: [], members: [],
      presences: [], voice_states: [], stage_instances: [], guild_scheduled_events: [], soundboard_sounds: [],
      roles: [{ id: this.guildId, name: '@everyone', permissions: String(MEMBER_PERMISSIONS), position: 0, color: 0, hoist: false, managed: false, mentionable: false, flags: 0 }],
      channels: channels.filter((c) => c.type !== 11).map((c) => this.channelJson(c)),
      threads: channels.filter((c) => c.type === 11).map((c) => this.channelJson(c)),
    });
  }

  private sendTo(ws: WebSocket, t: string, d: unknown): void {
    ws.send(JSON.stringify({ op: 0, t, s: ++this.seq, d }));
  }

  private dispatch(t: string, d: unknown): void {
    for (const ws of this.sockets) this.sendTo(ws, t, d);
  }

  /** Waits until a bot has identified (its READY was sent). */
  async waitForIdentify(timeoutMs = 10_000): Promise<void> {
    await this.waitFor(() => this.identifiedIntents !== 0, timeoutMs, 'IDENTIFY');
  }

  private channelJson(c: FakeChannel): Record<string, unknown> {
    if (c.type === 1) return { id: c.id, type: 1, last_message_id: null, recipients: [{ id: c.recipientId, username: 'dm-user', discriminator: '0' }] };
    const base = { id: c.id, type: c.type, guild_id: c.guildId, name: `channel-${c.id.slice(-4)}`, position: 0, permission_overwrites: [], nsfw: false, parent_id: c.parentId ?? null };
    return c.type === 11
      ? { ...base, owner_id: snowflake(), thread_metadata: { archived: false, auto_archive_duration: 1440, archive_timestamp: new Date().toISOString(), locked: false }, message_count: 0, member_count: 1 }
      : base;
  }

  private userJson(u: FakeUser): Record<string, unknown> {
    return { id: u.id, username: u.username, discriminator: '0', global_name: u.username, avatar: null, bot: u.bot ?? false };
  }

  // ── what users do ────────────────────────────────────────────────────────────────────────

  /** A user runs a slash command (or types in an autocompleted option); returns the interaction id. */
  runSlashCommand(o: SlashCommandOptions): string {
    const channel = this.channels.get(o.channelId);
    if (!channel) throw new Error(`no channel ${o.channelId}`);
    const id = snowflake(Date.now() - (o.ageMs ?? 0));
    const token = `aW50ZXJhY3Rpb246${Buffer.from(id).toString('base64url')}${Math.random().toString(36).slice(2)}`;
    this.interactions.set(id, { id, token, createdAt: Date.now(), acked: false, tokenValid: true, channelId: channel.id, callbacks: [], kind: o.focused ? 4 : 2 });
    const leaf = Object.entries(o.options ?? {}).map(([name, value]) => ({
      name, value, type: typeof value === 'string' ? 3 : typeof value === 'boolean' ? 5 : Number.isInteger(value) ? 4 : 10,
      ...(o.focused === name ? { focused: true } : {}),
    }));
    const resolved: Record<string, unknown> = {};
    for (const [name, f] of Object.entries(o.attachments ?? {})) {
      const file: FakeAttachment = { id: snowflake(), filename: f.filename, size: f.size ?? f.data.length, contentType: f.contentType ?? '', data: f.data };
      this.userFiles.set(file.id, file);
      const url = f.url ?? `${this.cdnBase}/attachments/${file.id}/${encodeURIComponent(file.filename)}?ex=1&is=1&hm=fake`;
      resolved[file.id] = { id: file.id, filename: file.filename, size: file.size, url, proxy_url: url, ...(f.contentType ? { content_type: f.contentType } : {}) };
      leaf.push({ name, value: file.id, type: 11 });
    }
    const options = o.subcommand ? [{ name: o.subcommand, type: 1, options: leaf }] : leaf;
    const inGuild = channel.guildId !== null;
    const payload: Record<string, unknown> = {
      id, application_id: this.applicationId, type: o.focused ? 4 : 2, token, version: 1,
      data: { id: snowflake(), name: o.name, type: 1, options, ...(Object.keys(resolved).length ? { resolved: { attachments: resolved } } : {}) },
      channel_id: channel.id, channel: this.channelJson(channel),
      app_permissions: String(MEMBER_PERMISSIONS), locale: 'en-US', entitlements: [],
      attachment_size_limit: o.attachmentSizeLimit ?? this.sizeLimit,
      context: inGuild ? 0 : 1,
      authorizing_integration_owners: inGuild ? { '0': channel.guildId } : { '1': o.user.id },
    };
    this.addInvoker(payload, channel, o.user, o.permissions);
    this.dispatch('INTERACTION_CREATE', payload);
    return id;
  }

  /** Who invoked: a guild member (with permissions) in a server, a user in a DM. */
  private addInvoker(payload: Record<string, unknown>, channel: FakeChannel, user: FakeUser, permissions?: bigint): void {
    if (channel.guildId !== null) {
      payload.guild_id = channel.guildId;
      payload.guild_locale = 'en-US';
      payload.member = { user: this.userJson(user), roles: [], permissions: String(permissions ?? MEMBER_PERMISSIONS), joined_at: new Date().toISOString(), deaf: false, mute: false, flags: 0 };
    } else {
      payload.user = this.userJson(user);
    }
  }

  /**
   * A user presses a button on a message: a MESSAGE_COMPONENT interaction (type 3) carrying the button's custom_id
   * and the message; the bot has 3 s to acknowledge it (type 6 DEFERRED_UPDATE_MESSAGE, 7, 4 or 5). Returns the id.
   */
  pressButton(messageId: string, user: FakeUser, customId: string): string {
    const m = this.messages.get(messageId);
    if (!m || m.deleted) throw new Error(`no message ${messageId}`);
    const button = m.components.flatMap((r) => r.components).find((b) => b.custom_id === customId);
    if (!button) throw new Error(`message ${messageId} has no button ${customId}`);
    if (button.disabled) throw new Error(`button ${customId} is disabled`);
    const channel = this.channels.get(m.channelId)!;
    const id = snowflake();
    const token = `aW50ZXJhY3Rpb246${Buffer.from(id).toString('base64url')}${Math.random().toString(36).slice(2)}`;
    const inGuild = channel.guildId !== null;
    const payload: Record<string, unknown> = {
      id, application_id: this.applicationId, type: 3, token, version: 1,
      data: { custom_id: customId, component_type: 2 },
      message: this.messageJson(m),
      channel_id: channel.id, channel: this.channelJson(channel),
      app_permissions: String(MEMBER_PERMISSIONS), locale: 'en-US', entitlements: [],
      attachment_size_limit: this.sizeLimit,
      context: inGuild ? 0 : 1,
      authorizing_integration_owners: inGuild ? { '0': channel.guildId } : { '1': user.id },
    };
    this.addInvoker(payload, channel, user);
    this.interactions.set(id, { id, token, createdAt: Date.now(), acked: false, tokenValid: true, channelId: channel.id, callbacks: [], kind: 3, payload });
    this.dispatch('INTERACTION_CREATE', payload);
    return id;
  }

  /** Sends an interaction again, same id and token (a gateway that delivers an event twice). */
  redeliver(interactionId: string): void {
    const payload = this.interaction(interactionId).payload;
    if (!payload) throw new Error(`interaction ${interactionId} cannot be redelivered`);
    this.dispatch('INTERACTION_CREATE', payload);
  }

  /** The custom_id of the button on a message whose emoji is `emoji`. */
  buttonId(messageId: string, emoji: string): string | undefined {
    return this.messages.get(messageId)?.components.flatMap((r) => r.components).find((b) => b.emoji?.name === emoji)?.custom_id;
  }

  /** A user adds a reaction (MESSAGE_REACTION_ADD, sent only to bots with the matching intent). */
  react(messageId: string, user: FakeUser, emoji: string): void {
    const m = this.messages.get(messageId);
    if (!m) throw new Error(`no message ${messageId}`);
    const users = m.reactions.get(emoji) ?? [];
    if (!users.includes(user.id)) users.push(user.id);
    m.reactions.set(emoji, users);
    const channel = this.channels.get(m.channelId)!;
    const intent = channel.guildId ? INTENT_GUILD_MESSAGE_REACTIONS : INTENT_DIRECT_MESSAGE_REACTIONS;
    if (!(this.identifiedIntents & intent)) return;
    this.dispatch('MESSAGE_REACTION_ADD', {
      user_id: user.id, channel_id: m.channelId, message_id: m.id, emoji: { id: null, name: emoji },
      burst: false, burst_colors: [], type: 0, message_author_id: m.authorId,
      ...(channel.guildId ? { guild_id: channel.guildId, member: { user: this.userJson(user), roles: [], joined_at: new Date().toISOString(), deaf: false, mute: false, flags: 0 } } : {}),
    });
  }

  interaction(id: string): Interaction {
    const i = this.interactions.get(id);
    if (!i) throw new Error(`no interaction ${id}`);
    return i;
  }

  /** The message an interaction's response created (its "@original"). */
  original(interactionId: string): FakeMessage | undefined {
    const mid = this.interactions.get(interactionId)?.messageId;
    return mid ? this.messages.get(mid) : undefined;
  }

  /** Followup messages of an interaction (e.g. ephemeral errors). */
  followups(interactionId: string): FakeMessage[] {
    return [...this.messages.values()].filter((m) => (m as FakeMessage & { interactionId?: string }).interactionId === interactionId && m.id !== this.interactions.get(interactionId)?.messageId);
  }

  /** Polls `check` every 20 ms until it returns a truthy value. */
  async waitFor<T>(check: () => T | undefined | null | false | 0 | '', timeoutMs = 10_000, what = 'condition'): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = check();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`fake Discord: timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  // ── REST ─────────────────────────────────────────────────────────────────────────────────

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const path = url.pathname.replace(/^\/api\/v10/, '').replaceAll('%40', '@');
    const method = req.method ?? 'GET';
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const route = path.replace(/\/(interactions|webhooks)\/(\d+)\/[^/]+/, '/$1/$2/:token');
    let m0: RegExpExecArray | null;
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}): void => {
      this.requests.push({ method, route, status, at: Date.now() });
      res.writeHead(status, body === undefined ? headers : { 'content-type': 'application/json', ...headers });
      res.end(body === undefined ? undefined : JSON.stringify(body));
      this.emit('request', { method, route, status });
    };
    for (const l of this.latencies) if (l.pattern.test(path)) await new Promise((r) => setTimeout(r, l.ms));
    const limit = this.rateLimits.find((r) => r.count > 0 && r.method === method && r.pattern.test(path));
    if (limit) {
      limit.count--;
      const headers = { 'retry-after': String(limit.retryAfter), 'x-ratelimit-limit': '5', 'x-ratelimit-remaining': '0', 'x-ratelimit-reset-after': String(limit.retryAfter), 'x-ratelimit-bucket': 'fake', 'x-ratelimit-scope': 'user' };
      return send(429, { message: 'You are being rate limited.', retry_after: limit.retryAfter, global: false }, headers);
    }
    // The CDN: users' attached files, no auth (Discord signs the URL instead); every download counted.
    if ((m0 = /^\/attachments\/(\d+)\/[^/]+$/.exec(url.pathname)) && method === 'GET' && this.userFiles.has(m0[1])) {
      const file = this.userFiles.get(m0[1])!;
      this.cdnDownloads++;
      this.requests.push({ method, route: '/attachments/:id', status: 200, at: Date.now() });
      res.writeHead(200, { 'content-type': file.contentType || 'application/octet-stream', 'content-length': String(file.data.length) });
      res.end(file.data);
      return;
    }
    const isWebhook = /^\/(interactions|webhooks)\//.test(path);
    if (!isWebhook && req.headers.authorization !== `Bot ${this.botToken}`) return send(401, { message: '401: Unauthorized', code: 0 });
    try {
      const body = await this.parseBody(req.headers['content-type'] ?? '', raw);
      const [status, out] = this.route(method, path, url, body);
      send(status, out);
    } catch (err) {
      if (err instanceof ApiError) send(err.status, { message: err.message, code: err.code });
      else send(500, { message: String(err), code: 0 });
    }
  }

  private async parseBody(contentType: string, raw: Buffer): Promise<{ json: any; files: FakeAttachment[] }> {
    if (!raw.length) return { json: undefined, files: [] };
    if (!contentType.startsWith('multipart/form-data')) return { json: JSON.parse(raw.toString('utf8')), files: [] };
    const form = await new Response(new Uint8Array(raw), { headers: { 'content-type': contentType } }).formData();
    const json = JSON.parse(String(form.get('payload_json') ?? '{}'));
    const files: FakeAttachment[] = [];
    for (const [key, value] of form.entries()) {
      const m = /^files\[(\d+)\]$/.exec(key);
      if (!m || typeof value === 'string') continue;
      const data = Buffer.from(await value.arrayBuffer());
      files[Number(m[1])] = { id: snowflake(), filename: value.name, size: data.length, contentType: value.type, data };
    }
    return { json, files };
  }

  private route(method: string, path: string, url: URL, body: { json: any; files: FakeAttachment[] }): [number, unknown] {
    let m: RegExpExecArray | null;
    if (method === 'GET' && (path === '/gateway/bot' || path === '/gateway')) {
      return [200, { url: `ws://127.0.0.1:${this.port}`, shards: 1, session_start_limit: { total: 1000, remaining: 999, reset_after: 0, max_concurrency: 1 } }];
    }
    if (method === 'GET' && path === '/users/@me') return [200, this.userJson(this.bot)];
    if ((m = /^\/applications\/(\d+)(?:\/guilds\/(\d+))?\/commands$/.exec(path)) && method === 'PUT') {
      if (m[1] !== this.applicationId) throw new ApiError(404, 10002, 'Unknown Application');
      const cmds = (body.json as Record<string, unknown>[]).map((c) => ({ ...c, id: snowflake(), application_id: this.applicationId, version: snowflake() }));
      this.commands.set(m[2] ?? 'global', cmds);
      return [200, cmds];
    }
    if ((m = /^\/interactions\/(\d+)\/([^/]+)\/callback$/.exec(path)) && method === 'POST') return this.callback(m[1], m[2], body, url);
    if ((m = /^\/webhooks\/(\d+)\/([^/]+)(?:\/messages\/(@original|\d+))?$/.exec(path))) return this.webhook(method, m[1], m[2], m[3], body);
    if ((m = /^\/channels\/(\d+)\/messages\/(\d+)\/reactions\/([^/]+)\/@me$/.exec(path)) && method === 'PUT') {
      const msg = this.channelMessage(m[1], m[2]);
      const emoji = decodeURIComponent(m[3]);
      const users = msg.reactions.get(emoji) ?? [];
      if (!users.includes(this.bot.id)) users.push(this.bot.id);
      msg.reactions.set(emoji, users);
      return [204, undefined];
    }
    if ((m = /^\/channels\/(\d+)\/messages\/(\d+)$/.exec(path))) {
      const msg = this.channelMessage(m[1], m[2]);
      if (method === 'GET') return [200, this.messageJson(msg)];
      if (msg.authorId !== this.bot.id) throw new ApiError(403, 50005, 'Cannot edit a message authored by another user');
      if (method === 'PATCH') return [200, this.messageJson(this.edit(msg, body, 'channel'))];
      if (method === 'DELETE') { msg.deleted = true; return [204, undefined]; }
    }
    if ((m = /^\/channels\/(\d+)\/messages$/.exec(path)) && method === 'POST') {
      const channel = this.channelFor(m[1]);
      const msg = this.create(channel.id, 0, undefined);
      return [200, this.messageJson(this.edit(msg, body, 'channel'))];
    }
    throw new ApiError(404, 0, '404: Not Found');
  }

  private callback(id: string, token: string, body: { json: any; files: FakeAttachment[] }, url: URL): [number, unknown] {
    const i = this.interactions.get(id);
    if (!i || i.token !== token || Date.now() - i.createdAt > 3000) {
      i?.callbacks.push({ type: body.json?.type, at: Date.now(), status: 404 });
      throw new ApiError(404, 10062, 'Unknown interaction');
    }
    if (i.acked) throw new ApiError(400, 40060, 'Interaction has already been acknowledged.');
    const { type, data } = body.json as { type: number; data?: { flags?: number; content?: string; choices?: unknown[] } };
    // DEFERRED_UPDATE_MESSAGE and UPDATE_MESSAGE answer a component interaction only.
    if ((type === 6 || type === 7) && i.kind !== 3) throw new ApiError(400, 50035, 'Invalid Form Body (type: Interaction callback type is not valid here)');
    i.acked = true;
    i.callbacks.push({ type, data, at: Date.now(), status: 200 });
    this.emit('callback', { interactionId: id, type, data });
    let message: FakeMessage | undefined;
    if (type === 4 || type === 5) {
      message = this.create(i.channelId, (data?.flags ?? 0) & EPHEMERAL | (type === 5 ? LOADING : 0), id);
      if (type === 4) this.edit(message, { json: data, files: body.files }, 'callback');
      i.messageId = message.id;
    }
    if (url.searchParams.get('with_response') !== 'true') return [204, undefined];
    return [200, { interaction: { id, type: i.kind, activity_instance_id: null, response_message_id: message?.id, response_message_loading: type === 5, response_message_ephemeral: Boolean((message?.flags ?? 0) & EPHEMERAL) }, resource: { type, ...(message ? { message: this.messageJson(message) } : {}) } }];
  }

  private webhook(method: string, appId: string, token: string, which: string | undefined, body: { json: any; files: FakeAttachment[] }): [number, unknown] {
    const i = [...this.interactions.values()].find((x) => x.token === token);
    if (appId !== this.applicationId || !i) throw new ApiError(404, 10015, 'Unknown Webhook');
    if (!i.tokenValid) throw new ApiError(401, 50027, 'Invalid Webhook Token');
    if (!which && method === 'POST') {
      if (!i.acked) throw new ApiError(400, 10062, 'Unknown interaction');
      const msg = this.create(i.channelId, (body.json?.flags ?? 0) & EPHEMERAL, i.id);
      return [200, this.messageJson(this.edit(msg, body, 'webhook'))];
    }
    const mid = which === '@original' ? i.messageId : which;
    const msg = mid ? this.messages.get(mid) : undefined;
    if (!msg || msg.deleted) throw new ApiError(404, 10008, 'Unknown Message');
    if (method === 'GET') return [200, this.messageJson(msg)];
    if (method === 'PATCH') { msg.flags &= ~LOADING; return [200, this.messageJson(this.edit(msg, body, 'webhook'))]; }
    if (method === 'DELETE') { msg.deleted = true; return [204, undefined]; }
    throw new ApiError(405, 0, '405: Method Not Allowed');
  }

  private channelFor(channelId: string): FakeChannel {
    const c = this.channels.get(channelId);
    if (!c || c.deleted) throw new ApiError(404, 10003, 'Unknown Channel');
    if (!c.botCanSend) throw new ApiError(403, 50013, 'Missing Permissions');
    return c;
  }

  private channelMessage(channelId: string, messageId: string): FakeMessage {
    this.channelFor(channelId);
    const msg = this.messages.get(messageId);
    if (!msg || msg.deleted || msg.channelId !== channelId || msg.flags & EPHEMERAL) throw new ApiError(404, 10008, 'Unknown Message');
    return msg;
  }

  private create(channelId: string, flags: number, interactionId: string | undefined): FakeMessage {
    const msg: FakeMessage & { interactionId?: string } = { id: snowflake(), channelId, authorId: this.bot.id, content: '', embeds: [], attachments: [], flags, reactions: new Map(), deleted: false, components: [], history: [], interactionId };
    this.messages.set(msg.id, msg);
    return msg;
  }

  /** Applies an edit: content/embeds replace, `attachments` lists which old ones stay, files are new. */
  private edit(msg: FakeMessage, body: { json: any; files: FakeAttachment[] }, via: 'callback' | 'webhook' | 'channel'): FakeMessage {
    const json = body.json ?? {};
    for (const f of body.files) if (f && f.size > this.sizeLimit) throw new ApiError(413, 40005, 'Request entity too large');
    if (json.content !== undefined) {
      if (String(json.content ?? '').length > 2000) throw new ApiError(400, 50035, 'Invalid Form Body (content: Must be 2000 or fewer in length.)');
      msg.content = json.content ?? '';
    }
    if (json.embeds !== undefined) msg.embeds = json.embeds ?? [];
    if (json.components !== undefined) msg.components = checkComponents(json.components ?? []);
    if (json.attachments !== undefined) {
      const kept: FakeAttachment[] = [];
      for (const a of json.attachments as { id: string | number; filename?: string }[]) {
        const old = msg.attachments.find((x) => x.id === String(a.id));
        if (old) kept.push(old);
        else if (body.files[Number(a.id)]) kept.push({ ...body.files[Number(a.id)], filename: a.filename ?? body.files[Number(a.id)].filename });
      }
      msg.attachments = kept;
    } else {
      msg.attachments.push(...body.files.filter(Boolean));
    }
    msg.history.push({ content: msg.content, attachments: msg.attachments.map((a) => a.filename), embeds: msg.embeds.length, via });
    this.emit('messageUpdate', msg);
    return msg;
  }


  private messageJson(m: FakeMessage): Record<string, unknown> {
    const channel = this.channels.get(m.channelId);
    return {
      id: m.id, channel_id: m.channelId, ...(channel?.guildId ? { guild_id: channel.guildId } : {}),
      author: this.userJson(this.bot), content: m.content, embeds: m.embeds, flags: m.flags, type: 20,
      attachments: m.attachments.map((a) => ({ id: a.id, filename: a.filename, size: a.size, content_type: a.contentType, url: `http://127.0.0.1:${this.port}/attachments/${a.id}/${a.filename}`, proxy_url: `http://127.0.0.1:${this.port}/attachments/${a.id}/${a.filename}` })),
      timestamp: new Date().toISOString(), edited_timestamp: null, tts: false, mention_everyone: false, mentions: [], mention_roles: [], pinned: false, components: m.components,
      reactions: [...m.reactions.entries()].map(([name, users]) => ({ emoji: { id: null, name }, count: users.length, me: users.includes(this.bot.id), burst_colors: [], count_details: { burst: 0, normal: users.length }, me_burst: false })),
      application_id: this.applicationId, webhook_id: this.applicationId,
    };
  }
}

/** Discord's rules for buttons: ≤ 5 rows of ≤ 5 buttons, custom_id 1–100 characters and unique on the message. */
function checkComponents(rows: FakeActionRow[]): FakeActionRow[] {
  const invalid = (why: string) => new ApiError(400, 50035, `Invalid Form Body (components: ${why})`);
  if (rows.length > 5) throw invalid('Must be 5 or fewer in length.');
  const ids = new Set<string>();
  for (const row of rows) {
    if (row.type !== 1 || !Array.isArray(row.components) || row.components.length < 1 || row.components.length > 5) throw invalid('an action row holds 1 to 5 buttons');
    for (const b of row.components) {
      if (b.type !== 2) throw invalid('only buttons are supported here');
      if (b.style === 5 ? !b.url : !b.custom_id || b.custom_id.length > 100) throw invalid('custom_id must be 1 to 100 characters');
      if (b.custom_id && ids.has(b.custom_id)) throw invalid('Component custom id cannot be duplicated');
      if (b.custom_id) ids.add(b.custom_id);
      if (!b.label && !b.emoji) throw invalid('a button needs a label or an emoji');
    }
  }
  return rows;
}

class ApiError extends Error {
  constructor(readonly status: number, readonly code: number, message: string) { super(message); }
}
