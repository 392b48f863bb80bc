// A fake Slack for end-to-end tests of the real Bolt app: the Web API methods the adapter uses,
// the external upload URL behind files.uploadV2, response_url hooks, a Socket Mode WebSocket, and
// a sender of signed HTTP requests (slash commands, Events API) for HTTP mode.
// State is in memory; everything listens on 127.0.0.1.
import { createHmac, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';

export interface FakeUser {
  id: string;
  name: string;
  is_admin?: boolean;
  is_owner?: boolean;
  is_primary_owner?: boolean;
}

export interface FakeMessage {
  channel: string;
  ts: string;
  thread_ts?: string;
  user: string;
  text: string;
  /** Earlier texts, oldest first (chat.update history). */
  edits: string[];
  files: string[];
  deleted: boolean;
  /** Block Kit blocks, as the bot last set them (chat.update without `blocks` keeps them, as on Slack). */
  blocks: FakeBlock[];
}

export interface FakeButton { type: 'button'; action_id: string; text: { type: 'plain_text'; text: string; emoji?: boolean }; value?: string; style?: string }
export type FakeBlock = { type: string; block_id?: string; elements?: FakeButton[]; text?: { type: string; text: string } };

export interface FakeFile {
  id: string;
  filename: string;
  length: number;
  bytes?: Buffer;
  channel?: string;
  thread_ts?: string;
  /** ts of the message that shares the file in its channel. */
  shareTs?: string;
  /** A file a user shared: its type and the size Slack reports (files.info), served at `urlPrivate` with the bot token. */
  mimetype?: string;
  size?: number;
  urlPrivate?: string;
}

/** A modal the app opened with views.open. */
export interface FakeView { id: string; triggerId: string; view: Json }

export interface ApiCall {
  method: string;
  token: string | null;
  args: Record<string, unknown>;
}

export interface FakeSlackOptions {
  botToken: string;
  appToken: string;
  signingSecret: string;
  teamId?: string;
}

type Json = Record<string, unknown>;

export class FakeSlack {
  readonly teamId: string;
  readonly appId = 'A0FAKEAPP';
  readonly botUserId = 'UBOT0001';
  readonly botId = 'BFAKEBOT';
  readonly users = new Map<string, FakeUser>();
  /** channel id → member user ids (the bot included when it was invited). */
  readonly channels = new Map<string, Set<string>>();
  readonly messages: FakeMessage[] = [];
  readonly files = new Map<string, FakeFile>();
  readonly calls: ApiCall[] = [];
  /** Bodies POSTed to response_url hooks, by hook id. */
  readonly responses = new Map<string, Json[]>();
  /** chat.postEphemeral messages (seen by one user only). */
  readonly ephemerals: { channel: string; user: string; text: string; thread_ts?: string }[] = [];
  /** Socket Mode acks by envelope id. */
  readonly acks = new Map<string, Json>();
  /** Web API method → the error Slack answers it with (e.g. chat.postMessage → restricted_action). */
  readonly failures = new Map<string, string>();
  /** Web API method → how long Slack takes to answer it (ms): a slow call, to open a race on purpose. */
  readonly delays = new Map<string, number>();
  /**
   * What files.delete does to the message that shared the file: removes it, or (as Slack does to a message with
   * text) leaves the message with its text and a "This file was deleted." tombstone in place of the file.
   */
  fileDeletion: 'removes-message' | 'leaves-tombstone' = 'removes-message';
  /** Modals opened (views.open), oldest first. */
  readonly views: FakeView[] = [];
  /** Downloads of users' files from url_private (with a valid bot token). */
  fileDownloads = 0;
  /** trigger_id → when it was issued: views.open takes it within 3 s, once. */
  private triggers = new Map<string, number>();

  private server: Server;
  private wss = new WebSocketServer({ noServer: true });
  private sockets = new Set<WebSocket>();
  private tsCounter = 0;
  private idCounter = 0;

  constructor(private readonly opts: FakeSlackOptions) {
    this.teamId = opts.teamId ?? 'T0FAKE';
    this.users.set(this.botUserId, { id: this.botUserId, name: 'styleclip' });
    this.server = createServer((req, res) => {
      this.route(req, res).catch((err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(String(err));
      });
    });
    this.server.on('upgrade', (req, socket, head) => {
      if (!req.url?.startsWith('/socket')) return socket.destroy();
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
  }

  async listen(): Promise<this> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return this;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** What SLACK_API_URL is set to. */
  get apiUrl(): string {
    return `${this.url}/api/`;
  }

  async close(): Promise<void> {
    for (const ws of this.sockets) ws.terminate();
    this.wss.close();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  addUser(user: FakeUser): void {
    this.users.set(user.id, user);
  }

  /** A channel with these members; pass the bot's id (`botUserId`) to have it invited. */
  addChannel(id: string, members: string[]): void {
    this.channels.set(id, new Set(members));
  }

  visibleMessages(channel: string): FakeMessage[] {
    return this.messages.filter((m) => m.channel === channel && !m.deleted);
  }

  message(channel: string, ts: string): FakeMessage | undefined {
    return this.messages.find((m) => m.channel === channel && m.ts === ts);
  }

  callsTo(method: string): ApiCall[] {
    return this.calls.filter((c) => c.method === method);
  }

  // ---- inbound traffic to the app -------------------------------------------------------------

  /** A slash command payload as Slack sends it; `response_url` points back at this fake. */
  slashCommand(p: { command: string; text: string; user: string; channel: string }): Record<string, string> {
    const hook = `hook-${++this.idCounter}`;
    this.responses.set(hook, []);
    return {
      token: 'legacy-verification-token',
      team_id: this.teamId,
      team_domain: 'fake',
      channel_id: p.channel,
      channel_name: p.channel.toLowerCase(),
      user_id: p.user,
      user_name: this.users.get(p.user)?.name ?? p.user,
      command: p.command,
      text: p.text,
      api_app_id: this.appId,
      is_enterprise_install: 'false',
      response_url: `${this.url}/hooks/${hook}`,
      trigger_id: `${++this.idCounter}.${randomUUID()}`,
    };
  }

  /** An Events API callback body around one event. */
  eventCallback(event: Json, eventId = `Ev${++this.idCounter}`): Json {
    return {
      token: 'legacy-verification-token',
      team_id: this.teamId,
      api_app_id: this.appId,
      event,
      type: 'event_callback',
      event_id: eventId,
      event_time: Math.floor(Date.now() / 1000),
      authorizations: [{ team_id: this.teamId, user_id: this.botUserId, is_bot: true, is_enterprise_install: false }],
      is_ext_shared_channel: false,
    };
  }

  reactionAdded(p: { user: string; reaction: string; channel: string; ts: string }): Json {
    const item = this.message(p.channel, p.ts);
    return {
      type: 'reaction_added',
      user: p.user,
      reaction: p.reaction,
      item_user: item?.user ?? this.botUserId,
      item: { type: 'message', channel: p.channel, ts: p.ts },
      event_ts: this.nextTs(),
    };
  }

  /**
   * A `block_actions` payload: a user pressed the button `actionId` on a message (Slack's interactivity request,
   * with the message, its container, a response_url and a trigger_id, as Slack sends it).
   */
  blockActions(p: { user: string; channel: string; ts: string; actionId: string }): Json {
    const msg = this.message(p.channel, p.ts);
    if (!msg || msg.deleted) throw new Error(`no message ${p.ts}`);
    const block = msg.blocks.find((b) => b.elements?.some((e) => e.action_id === p.actionId));
    const button = block?.elements?.find((e) => e.action_id === p.actionId);
    if (!block || !button) throw new Error(`message ${p.ts} has no button ${p.actionId}`);
    const hook = `hook-${++this.idCounter}`;
    this.responses.set(hook, []);
    const user = this.users.get(p.user);
    return {
      type: 'block_actions',
      user: { id: p.user, username: user?.name ?? p.user, name: user?.name ?? p.user, team_id: this.teamId },
      api_app_id: this.appId,
      token: 'legacy-verification-token',
      container: { type: 'message', message_ts: msg.ts, channel_id: p.channel, is_ephemeral: false, ...(msg.thread_ts ? { thread_ts: msg.thread_ts } : {}) },
      trigger_id: `${++this.idCounter}.${randomUUID()}`,
      team: { id: this.teamId, domain: 'fake' },
      enterprise: null,
      is_enterprise_install: false,
      channel: { id: p.channel, name: p.channel.toLowerCase() },
      message: { type: 'message', user: msg.user, ts: msg.ts, text: msg.text, blocks: msg.blocks, ...(msg.thread_ts ? { thread_ts: msg.thread_ts } : {}) },
      state: { values: {} },
      response_url: `${this.url}/hooks/${hook}`,
      actions: [{ ...button, block_id: block.block_id, action_ts: `${Date.now() / 1000}` }],
    };
  }

  /**
   * A user posts a message sharing a file (a photo, say): the file is served at its url_private to the bot token;
   * `size` is what Slack reports (defaults to the data's), `url` overrides url_private (a file elsewhere).
   */
  userPostsFile(p: { user: string; channel: string; filename: string; mimetype: string; data: Buffer; size?: number; url?: string; text?: string }): FakeMessage {
    const id = `F${String(++this.idCounter).padStart(8, '0')}`;
    const msg: FakeMessage = { channel: p.channel, ts: this.nextTs(), user: p.user, text: p.text ?? '', edits: [], files: [id], deleted: false, blocks: [] };
    this.messages.push(msg);
    const urlPrivate = p.url ?? `${this.url}/files-pri/${this.teamId}-${id}/${encodeURIComponent(p.filename)}`;
    this.files.set(id, { id, filename: p.filename, length: p.data.length, bytes: p.data, channel: p.channel, shareTs: msg.ts, mimetype: p.mimetype, size: p.size ?? p.data.length, urlPrivate });
    return msg;
  }

  /** A file as Slack describes it in message payloads and files.info. */
  private fileJson(f: FakeFile): Json {
    return {
      id: f.id, name: f.filename, title: f.filename, mimetype: f.mimetype ?? 'image/png', filetype: (f.mimetype ?? 'png').split('/').pop(),
      size: f.size ?? f.bytes?.length ?? 0, url_private: f.urlPrivate, url_private_download: f.urlPrivate ? `${f.urlPrivate}?download=1` : undefined,
    };
  }

  private trigger(): string {
    const id = `${++this.idCounter}.${randomUUID()}`;
    this.triggers.set(id, Date.now());
    return id;
  }

  /** A message shortcut (`message_action`) on a message: what Slack sends when a user picks it from the message's menu. */
  messageAction(p: { user: string; channel: string; ts: string; callbackId: string }): Json {
    const msg = this.message(p.channel, p.ts);
    if (!msg || msg.deleted) throw new Error(`no message ${p.ts}`);
    const hook = `hook-${++this.idCounter}`;
    this.responses.set(hook, []);
    const user = this.users.get(p.user);
    const files = msg.files.map((id) => this.files.get(id)).filter((f): f is FakeFile => Boolean(f));
    return {
      type: 'message_action',
      token: 'legacy-verification-token',
      action_ts: `${Date.now() / 1000}`,
      team: { id: this.teamId, domain: 'fake' },
      user: { id: p.user, name: user?.name ?? p.user, username: user?.name ?? p.user, team_id: this.teamId },
      channel: { id: p.channel, name: p.channel.toLowerCase() },
      is_enterprise_install: false,
      enterprise: null,
      callback_id: p.callbackId,
      trigger_id: this.trigger(),
      response_url: `${this.url}/hooks/${hook}`,
      message_ts: msg.ts,
      message: { type: 'message', user: msg.user, ts: msg.ts, text: msg.text, ...(msg.thread_ts ? { thread_ts: msg.thread_ts } : {}), ...(files.length ? { files: files.map((f) => this.fileJson(f)) } : {}) },
    };
  }

  /** A user submits an opened modal with these plain-text inputs (block_id → value; the action_id is `value`). */
  viewSubmission(p: { user: string; viewId: string; values: Record<string, string> }): Json {
    const opened = this.views.find((v) => v.id === p.viewId);
    if (!opened) throw new Error(`no view ${p.viewId}`);
    const user = this.users.get(p.user);
    const values = Object.fromEntries(Object.entries(p.values).map(([block, value]) => [block, { value: { type: 'plain_text_input', value: value || null } }]));
    return {
      type: 'view_submission',
      team: { id: this.teamId, domain: 'fake' },
      user: { id: p.user, username: user?.name ?? p.user, name: user?.name ?? p.user, team_id: this.teamId },
      api_app_id: this.appId,
      token: 'legacy-verification-token',
      trigger_id: this.trigger(),
      view: { ...opened.view, id: opened.id, team_id: this.teamId, app_id: this.appId, bot_id: this.botId, hash: 'h', state: { values } },
      response_urls: [],
      is_enterprise_install: false,
      enterprise: null,
    };
  }

  /** The action_id of the button on a message whose text starts with `emoji`. */
  buttonId(channel: string, ts: string, emoji: string): string | undefined {
    const buttons = this.message(channel, ts)?.blocks.filter((b) => b.type === 'actions').flatMap((b) => b.elements ?? []) ?? [];
    return buttons.find((b) => b.text.text.startsWith(emoji))?.action_id;
  }

  /** Sends an envelope over every open Socket Mode connection; resolves with the app's ack. */
  async sendEnvelope(
    type: 'slash_commands' | 'events_api' | 'interactive',
    payload: Json,
    extra: { retryAttempt?: number } = {},
  ): Promise<Json> {
    const [ws] = [...this.sockets].filter((s) => s.readyState === WebSocket.OPEN);
    if (!ws) throw new Error('no Socket Mode connection');
    const envelopeId = randomUUID();
    const envelope: Json = { envelope_id: envelopeId, type, payload, accepts_response_payload: type !== 'events_api' };
    if (type === 'events_api') {
      envelope.retry_attempt = extra.retryAttempt ?? 0;
      envelope.retry_reason = extra.retryAttempt ? 'timeout' : '';
    }
    ws.send(JSON.stringify(envelope));
    return this.waitFor(() => this.acks.get(envelopeId), `ack of ${type} envelope`);
  }

  /** POSTs a request to an HTTP-mode app, signed with the signing secret unless told otherwise. */
  async sendSigned(
    url: string,
    body: string,
    contentType: 'application/json' | 'application/x-www-form-urlencoded',
    opts: { secret?: string; timestamp?: number; retryNum?: number } = {},
  ): Promise<{ status: number; text: string }> {
    const ts = opts.timestamp ?? Math.floor(Date.now() / 1000);
    const signature = signSlackRequest(opts.secret ?? this.opts.signingSecret, ts, body);
    const headers: Record<string, string> = {
      'content-type': contentType,
      'x-slack-request-timestamp': String(ts),
      'x-slack-signature': signature,
    };
    if (opts.retryNum) {
      headers['x-slack-retry-num'] = String(opts.retryNum);
      headers['x-slack-retry-reason'] = 'http_timeout';
    }
    const res = await fetch(url, { method: 'POST', headers, body });
    return { status: res.status, text: await res.text() };
  }

  /** Polls until `probe` returns (or resolves to) a value that is not undefined, null or false. */
  async waitFor<T>(probe: () => T | undefined | null | false | Promise<T | undefined | null | false>, what: string, timeoutMs = 20_000): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  // ---- server side ----------------------------------------------------------------------------

  private onSocket(ws: WebSocket): void {
    this.sockets.add(ws);
    ws.on('close', () => this.sockets.delete(ws));
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as Json;
      if (typeof msg.envelope_id === 'string') this.acks.set(msg.envelope_id, (msg.payload as Json) ?? {});
    });
    ws.send(JSON.stringify({ type: 'hello', num_connections: 1, connection_info: { app_id: this.appId } }));
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const raw = await readBody(req);
    if (url.pathname.startsWith('/api/')) {
      const method = url.pathname.slice('/api/'.length);
      const args = parseArgs(raw, req.headers['content-type'] ?? '');
      const auth = req.headers.authorization;
      const token = auth?.startsWith('Bearer ') ? auth.slice(7) : typeof args.token === 'string' ? args.token : null;
      this.calls.push({ method, token, args });
      const delay = this.delays.get(method);
      if (delay) await new Promise((r) => setTimeout(r, delay));
      return sendJson(res, this.api(method, token, args));
    }
    if (url.pathname.startsWith('/upload/')) {
      const file = this.files.get(url.pathname.slice('/upload/'.length));
      if (!file) return sendText(res, 404, 'unknown upload');
      // @slack/web-api posts the bytes as multipart/form-data; accept a raw body as well.
      const type = req.headers['content-type'] ?? '';
      if (type.startsWith('multipart/form-data')) {
        const form = await new Response(new Uint8Array(raw), { headers: { 'content-type': type } }).formData();
        const part = [...form.values()].find((v): v is File => typeof v !== 'string');
        file.bytes = part ? Buffer.from(await part.arrayBuffer()) : Buffer.alloc(0);
      } else {
        file.bytes = raw;
      }
      return sendText(res, 200, `OK - ${file.bytes.length}`);
    }
    if (url.pathname.startsWith('/files-pri/') && req.method === 'GET') {
      // url_private: only with the bot token (Slack answers a login page otherwise); every download counted.
      const file = [...this.files.values()].find((f) => f.urlPrivate && new URL(f.urlPrivate).pathname === url.pathname);
      if (!file?.bytes) return sendText(res, 404, 'not found');
      if (req.headers.authorization !== `Bearer ${this.opts.botToken}`) return sendText(res, 403, 'not authorized');
      this.fileDownloads++;
      res.writeHead(200, { 'content-type': file.mimetype ?? 'application/octet-stream', 'content-length': String(file.bytes.length) });
      res.end(file.bytes);
      return;
    }
    if (url.pathname.startsWith('/hooks/')) {
      const list = this.responses.get(url.pathname.slice('/hooks/'.length));
      if (!list) return sendText(res, 404, 'unknown hook');
      list.push(JSON.parse(raw.toString()) as Json);
      return sendText(res, 200, 'ok');
    }
    sendText(res, 404, 'not found');
  }

  private api(method: string, token: string | null, a: Record<string, unknown>): Json {
    if (method === 'apps.connections.open') {
      if (token !== this.opts.appToken) return { ok: false, error: 'invalid_auth' };
      return { ok: true, url: `${this.url.replace('http', 'ws')}/socket?ticket=${randomUUID()}` };
    }
    if (token !== this.opts.botToken) return { ok: false, error: 'invalid_auth' };
    const failure = this.failures.get(method);
    if (failure) return { ok: false, error: failure };
    const channel = String(a.channel ?? a.channel_id ?? '');
    switch (method) {
      case 'auth.test':
        return { ok: true, url: 'https://fake.slack.com/', team: 'Fake', user: 'styleclip', team_id: this.teamId, user_id: this.botUserId, bot_id: this.botId };
      case 'users.info': {
        const user = this.users.get(String(a.user));
        return user ? { ok: true, user: { ...user, team_id: this.teamId } } : { ok: false, error: 'user_not_found' };
      }
      case 'chat.postMessage': {
        const denied = this.membership(channel);
        if (denied) return denied;
        const parent = a.thread_ts ? this.message(channel, String(a.thread_ts)) : undefined;
        if (a.thread_ts && !parent) return { ok: false, error: 'thread_not_found' };
        // Like Slack, a reply to a reply goes in the parent's thread, and the answer says which thread.
        const blocks = checkBlocks(a.blocks);
        if (typeof blocks === 'string') return { ok: false, error: blocks };
        const msg = this.post(channel, String(a.text ?? ''), parent ? (parent.thread_ts ?? parent.ts) : undefined);
        if (blocks) msg.blocks = blocks;
        return { ok: true, channel, ts: msg.ts, message: { type: 'message', user: this.botUserId, text: msg.text, ts: msg.ts, thread_ts: msg.thread_ts } };
      }
      case 'chat.postEphemeral': {
        const denied = this.membership(channel);
        if (denied) return denied;
        if (!this.channels.get(channel)?.has(String(a.user))) return { ok: false, error: 'user_not_in_channel' };
        this.ephemerals.push({ channel, user: String(a.user), text: String(a.text ?? ''), thread_ts: a.thread_ts ? String(a.thread_ts) : undefined });
        return { ok: true, message_ts: this.nextTs() };
      }
      case 'chat.update': {
        const msg = this.message(channel, String(a.ts));
        if (!msg || msg.deleted) return { ok: false, error: 'message_not_found' };
        if (msg.user !== this.botUserId) return { ok: false, error: 'cant_update_message' };
        const blocks = checkBlocks(a.blocks);
        if (typeof blocks === 'string') return { ok: false, error: blocks };
        msg.edits.push(msg.text);
        msg.text = String(a.text ?? '');
        if (blocks) msg.blocks = blocks;
        return { ok: true, channel, ts: msg.ts, text: msg.text };
      }
      case 'chat.delete': {
        const msg = this.message(channel, String(a.ts));
        if (!msg || msg.deleted) return { ok: false, error: 'message_not_found' };
        msg.deleted = true;
        return { ok: true, channel, ts: msg.ts };
      }
      case 'files.getUploadURLExternal': {
        const length = Number(a.length);
        if (!a.filename || !Number.isFinite(length) || length <= 0) return { ok: false, error: 'invalid_arguments' };
        const id = `F${String(++this.idCounter).padStart(8, '0')}`;
        this.files.set(id, { id, filename: String(a.filename), length });
        return { ok: true, upload_url: `${this.url}/upload/${id}`, file_id: id };
      }
      case 'files.completeUploadExternal': {
        const list = JSON.parse(String(a.files ?? '[]')) as { id: string; title?: string }[];
        const files = list.map((f) => this.files.get(f.id));
        if (files.some((f) => !f || !f.bytes)) return { ok: false, error: 'file_not_found' };
        if (channel) {
          const denied = this.membership(channel);
          if (denied) return denied;
          const thread = a.thread_ts ? String(a.thread_ts) : undefined;
          if (thread && !this.message(channel, thread)) return { ok: false, error: 'thread_not_found' };
          const share = this.post(channel, String(a.initial_comment ?? ''), thread);
          for (const f of files as FakeFile[]) {
            Object.assign(f, { channel, thread_ts: thread, shareTs: share.ts });
            share.files.push(f.id);
          }
        }
        // Like Slack, the completion doesn't say where the file was shared (that happens asynchronously).
        return { ok: true, files: (files as FakeFile[]).map((f) => ({ id: f.id, title: f.filename })) };
      }
      case 'files.delete': {
        const f = this.files.get(String(a.file));
        if (!f) return { ok: false, error: 'file_not_found' };
        this.files.delete(f.id);
        for (const m of this.messages.filter((x) => x.files.includes(f.id))) {
          if (this.fileDeletion === 'removes-message') m.deleted = true;
          else m.files = m.files.filter((id) => id !== f.id);
        }
        return { ok: true };
      }
      case 'files.info': {
        const f = this.files.get(String(a.file));
        if (!f) return { ok: false, error: 'file_not_found' };
        const shares = f.channel && f.shareTs ? { public: { [f.channel]: [{ ts: f.shareTs, thread_ts: f.thread_ts }] } } : {};
        if (f.urlPrivate) return { ok: true, file: { ...this.fileJson(f), shares } };
        return { ok: true, file: { id: f.id, name: f.filename, size: f.bytes?.length ?? 0, shares } };
      }
      case 'views.open': {
        const issued = this.triggers.get(String(a.trigger_id));
        if (issued === undefined) return { ok: false, error: 'invalid_trigger_id' };
        this.triggers.delete(String(a.trigger_id));
        if (Date.now() - issued > 3000) return { ok: false, error: 'expired_trigger_id' };
        const view = (typeof a.view === 'string' ? JSON.parse(a.view) : a.view) as Json;
        if (view.type !== 'modal' || !view.title || !Array.isArray(view.blocks)) return { ok: false, error: 'invalid_arguments' };
        const id = `V${String(++this.idCounter).padStart(8, '0')}`;
        this.views.push({ id, triggerId: String(a.trigger_id), view });
        return { ok: true, view: { ...view, id, state: { values: {} } } };
      }
      default:
        return { ok: false, error: 'unknown_method' };
    }
  }

  private membership(channel: string): Json | null {
    const members = this.channels.get(channel);
    if (!members) return { ok: false, error: 'channel_not_found' };
    if (!members.has(this.botUserId)) return { ok: false, error: 'not_in_channel' };
    return null;
  }

  private post(channel: string, text: string, thread_ts?: string): FakeMessage {
    const msg: FakeMessage = { channel, ts: this.nextTs(), thread_ts, user: this.botUserId, text, edits: [], files: [], deleted: false, blocks: [] };
    this.messages.push(msg);
    return msg;
  }

  private nextTs(): string {
    return `${Math.floor(Date.now() / 1000)}.${String(++this.tsCounter).padStart(6, '0')}`;
  }
}

/**
 * Block Kit as Slack checks it for the blocks this bot sends: ≤ 50 blocks, section text ≤ 3000, an actions block
 * of ≤ 25 elements, action_id ≤ 255 and unique in the message, button text ≤ 75. Slack's error code when not.
 */
function checkBlocks(raw: unknown): FakeBlock[] | undefined | string {
  if (raw === undefined) return undefined;
  const blocks = (typeof raw === 'string' ? JSON.parse(raw) : raw) as FakeBlock[];
  if (!Array.isArray(blocks) || blocks.length > 50) return 'invalid_blocks';
  const ids = new Set<string>();
  for (const b of blocks) {
    if (b.type === 'section' && (!b.text || b.text.text.length > 3000)) return 'invalid_blocks';
    if (b.type !== 'actions') continue;
    if (!b.elements?.length || b.elements.length > 25) return 'invalid_blocks';
    for (const e of b.elements) {
      if (e.type !== 'button' || !e.action_id || e.action_id.length > 255 || ids.has(e.action_id)) return 'invalid_blocks';
      if (!e.text?.text || e.text.text.length > 75) return 'invalid_blocks';
      ids.add(e.action_id);
    }
  }
  return blocks;
}

export function signSlackRequest(secret: string, timestamp: number, body: string): string {
  return `v0=${createHmac('sha256', secret).update(`v0:${timestamp}:${body}`).digest('hex')}`;
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function parseArgs(raw: Buffer, contentType: string): Record<string, unknown> {
  if (raw.length === 0) return {};
  if (contentType.startsWith('application/json')) return JSON.parse(raw.toString()) as Record<string, unknown>;
  return Object.fromEntries(new URLSearchParams(raw.toString()));
}

function sendJson(res: ServerResponse, body: Json): void {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function sendText(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain' });
  res.end(text);
}
