// The playground adapter: a local web chat over the bot core (the embedded default). Users post commands as a
// named user, see progress and image replies, and react ➕/➖/❌ on results. State lives in memory; results
// live in the core's store.
import type { Attachment, BotCore, CommandReply, JobUpdate, ResultAction } from '../../core/types.ts';
import { RESULT_BUTTONS, resultButtons } from '../result-buttons.ts';
import { readJson, sendJson, type RouteHandler } from '../../http.ts';
import { PAGE } from './page.ts';

export type MessageStatus = 'pending' | 'queued' | 'running' | 'completed' | 'failed' | 'cancelled' | 'error' | 'info';

export interface PlaygroundMessage {
  id: string;
  at: number;
  user: string;
  bot: boolean;
  text: string;
  replyTo?: string;
  status?: MessageStatus;
  progress?: number;
  jobId?: string;
  imageUrl?: string;
  /** While an optimize job runs: its latest small progress image. */
  previewUrl?: string;
  /** A finished result's buttons (the same set as on Discord and Slack); a click posts the emoji as a reaction. */
  buttons?: { emoji: string; label: string }[];
  /** Photo edits: the aligned face before → after. */
  beforeAfterUrl?: string;
  /** A user's message that came with a photo (the photo itself is not kept here). */
  attachment?: { name: string; size: number };
  reactions: Record<string, string[]>;
}

export interface PlaygroundOptions {
  /** User names that are admins of the playground "server". */
  admins: string[];
  /** Shown as a banner (e.g. the untrained-pack warning). */
  notice?: string;
  maxMessages?: number;
  /** Largest photo upload in bytes (default 10 MB); the request body is refused past it before it is read. */
  maxPhotoBytes?: number;
}

/** An uploaded photo as the page sends it: `{ name, type, data }`, data in base64. */
interface Upload {
  name?: unknown;
  type?: unknown;
  data?: unknown;
}

const DEFAULT_MAX_PHOTO = 10 * 1024 * 1024;

const CHANNEL = 'general';
const SERVER = 'playground';
/** Reactions that act on a result: the buttons' emoji, their Slack names, and what is easy to type. */
const ACTIONS: Record<string, ResultAction> = {
  ...Object.fromEntries(Object.values(RESULT_BUTTONS).map((b) => [b.emoji, b.action])),
  '+': 'stronger',
  heavy_plus_sign: 'stronger',
  '-': 'weaker',
  heavy_minus_sign: 'weaker',
  game_die: 'reroll',
  '↩️': 'original',
  leftwards_arrow_with_hook: 'original',
  x: 'cancel',
};
const USER_NAME = /^[\w.-]{1,32}$/;

export interface Playground {
  routes: RouteHandler;
  messages(): PlaygroundMessage[];
  close(): void;
}

export function createPlayground(core: BotCore, options: PlaygroundOptions): Playground {
  const messages: PlaygroundMessage[] = [];
  const byId = new Map<string, PlaygroundMessage>();
  let version = 0;
  let counter = 0;
  const max = options.maxMessages ?? 500;
  // Unique across restarts (job ids derive from message ids and persist in Redis).
  const newId = () => `${Date.now().toString(36)}${(++counter).toString(36)}`;

  function add(m: Omit<PlaygroundMessage, 'id' | 'at' | 'reactions'>): PlaygroundMessage {
    const msg: PlaygroundMessage = { id: newId(), at: Date.now(), reactions: {}, ...m };
    messages.push(msg);
    byId.set(msg.id, msg);
    while (messages.length > max) byId.delete(messages.shift()!.id);
    version++;
    return msg;
  }

  function change(msg: PlaygroundMessage, patch: Partial<PlaygroundMessage>) {
    Object.assign(msg, patch);
    version++;
  }

  async function applyReply(msg: PlaygroundMessage, reply: CommandReply) {
    if (reply.job) {
      // The job's own updates (running, even completed) may have arrived while invoke() was finishing:
      // the "Queued" reply must not overwrite them.
      if (msg.status === 'pending') change(msg, { text: reply.text, status: 'queued', jobId: reply.job.id });
      else change(msg, { jobId: reply.job.id });
      await core.linkMessage('playground', msg.id, reply.job.id);
    } else {
      change(msg, { text: reply.text, status: reply.error ? 'error' : 'info' });
    }
  }

  const unsubscribe = core.onUpdate('playground', (u: JobUpdate) => {
    const msg = u.target.messageId ? byId.get(u.target.messageId) : undefined;
    if (!msg) return;
    if (msg.status === 'completed' && u.status !== 'completed') return; // a late progress event
    const preview = u.status === 'running' && u.preview ? `/api/previews/${encodeURIComponent(u.jobId)}?p=${u.progress ?? 0}` : undefined;
    change(msg, {
      status: u.status,
      progress: u.progress,
      text: u.text,
      previewUrl: u.status === 'running' ? (preview ?? msg.previewUrl) : undefined,
      ...(u.status === 'completed'
        ? { imageUrl: `/api/images/${encodeURIComponent(u.jobId)}`, buttons: resultButtons(u.jobId, u.actions).map(({ emoji, label }) => ({ emoji, label })) }
        : {}),
      ...(u.status === 'completed' && u.beforeAfter ? { beforeAfterUrl: `/api/images/${encodeURIComponent(u.jobId)}/before-after` } : {}),
    });
  });

  const maxPhoto = options.maxPhotoBytes ?? DEFAULT_MAX_PHOTO;

  /** The upload as the core's Attachment; its size is what the base64 says, checked before decoding it. */
  function attachmentOf(image: Upload | undefined): Attachment | undefined {
    if (image === undefined || image === null) return undefined;
    if (typeof image !== 'object' || typeof image.data !== 'string') throw new Error('image must be { name, type, data: base64 }');
    const size = Math.floor((image.data.length * 3) / 4) - (image.data.endsWith('==') ? 2 : image.data.endsWith('=') ? 1 : 0);
    const file: Attachment = { size, name: String(image.name ?? 'photo').slice(0, 100), contentType: String(image.type ?? '') || undefined };
    if (size <= maxPhoto) file.bytes = Buffer.from(image.data, 'base64');
    return file;
  }

  async function post(body: { user?: unknown; text?: unknown; replyTo?: unknown; image?: Upload }) {
    const user = String(body.user ?? '').trim();
    const text = String(body.text ?? '').trim();
    if (!USER_NAME.test(user)) throw new Error('user must be 1–32 letters, digits, "_", "." or "-"');
    if (!text || text.length > 2000) throw new Error('text must be 1–2000 characters');
    const file = attachmentOf(body.image);
    const replyTo = typeof body.replyTo === 'string' && byId.has(body.replyTo) ? body.replyTo : undefined;
    const mine = add({ user, bot: false, text, replyTo, ...(file ? { attachment: { name: file.name!, size: file.size } } : {}) });
    const command = /^\/(\S+)\s*([\s\S]*)$/.exec(text);
    if (!command) return mine;
    const reply = add({ user: 'styleclip', bot: true, text: '…', replyTo: mine.id, status: 'pending' });
    const result = await core.invoke(
      command[1],
      { kind: 'text', text: command[2], ...(file ? { attachments: [file] } : {}) },
      {
        platform: 'playground',
        serverId: SERVER,
        channelId: CHANNEL,
        user: { id: user, name: user },
        isPlatformAdmin: options.admins.includes(user),
        requestId: mine.id,
        ...(replyTo ? { replyToMessageKey: replyTo } : {}),
      },
      { platform: 'playground', channelId: CHANNEL, messageId: reply.id },
    );
    await applyReply(reply, result);
    return mine;
  }

  async function react(id: string, body: { user?: unknown; emoji?: unknown }) {
    const msg = byId.get(id);
    if (!msg) return { status: 404, body: { error: `no message ${id}` } };
    const user = String(body.user ?? '').trim();
    const emoji = String(body.emoji ?? '').trim();
    if (!USER_NAME.test(user) || !emoji || emoji.length > 32) return { status: 400, body: { error: 'user and emoji are required' } };
    const who = msg.reactions[emoji] ?? [];
    if (who.includes(user)) return { status: 200, body: { ok: true } }; // a reaction toggles once, like the platforms
    change(msg, { reactions: { ...msg.reactions, [emoji]: [...who, user] } });
    const action = ACTIONS[emoji];
    const jobId = await core.jobForMessage('playground', id);
    if (!action || !jobId) return { status: 200, body: { ok: true } };
    const dedupeKey = `playground:${id}:${user}:${emoji}`;
    if (action === 'cancel') {
      const result = await core.cancel(jobId, user, dedupeKey);
      if (!result) return { status: 200, body: { ok: true, ignored: true } };
      if (!result.error) change(msg, { imageUrl: undefined, buttons: undefined, text: `${msg.text}\n(${result.text.toLowerCase()})` });
      const reply = add({ user: 'styleclip', bot: true, text: '…', replyTo: id, status: 'pending' });
      await applyReply(reply, result);
      return { status: 200, body: { ok: true, id: reply.id } };
    }
    const reply = add({ user: 'styleclip', bot: true, text: '…', replyTo: id, status: 'pending' });
    const result = await core.nudge(jobId, action, user, dedupeKey, { platform: 'playground', channelId: CHANNEL, messageId: reply.id });
    if (!result) {
      messages.splice(messages.indexOf(reply), 1);
      byId.delete(reply.id);
      version++;
      return { status: 200, body: { ok: true, ignored: true } };
    }
    await applyReply(reply, result);
    return { status: 200, body: { ok: true, id: reply.id } };
  }

  const routes: RouteHandler = async (req, res, url) => {
    const p = url.pathname;
    if (req.method === 'GET' && (p === '/' || p === '/index.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
      return true;
    }
    if (p === '/api/messages' && req.method === 'GET') {
      sendJson(res, 200, { version, notice: options.notice ?? null, messages });
      return true;
    }
    if (p === '/api/messages' && req.method === 'POST') {
      // A photo comes base64 in the JSON body: its length is checked (header, then while reading) before parsing.
      const limit = Math.ceil((maxPhoto * 4) / 3) + 64 * 1024;
      if (Number(req.headers['content-length'] ?? 0) > limit) {
        sendJson(res, 413, { error: `request too large: photos up to ${Math.round(maxPhoto / 1024 / 1024)} MB` });
        req.resume();
        return true;
      }
      try {
        const msg = await post((await readJson(req, limit)) as Record<string, unknown>);
        sendJson(res, 200, { id: msg.id });
      } catch (err) {
        sendJson(res, 400, { error: (err as Error).message });
      }
      return true;
    }
    const reaction = /^\/api\/messages\/([\w-]+)\/reactions$/.exec(p);
    if (reaction && req.method === 'POST') {
      const out = await react(reaction[1], (await readJson(req)) as Record<string, unknown>);
      sendJson(res, out.status, out.body);
      return true;
    }
    const preview = /^\/api\/previews\/([\w.-]+)$/.exec(p);
    if (preview && req.method === 'GET') {
      const img = (await core.previewImage?.(decodeURIComponent(preview[1]))) ?? null;
      if (!img) sendJson(res, 404, { error: 'no preview (the job is not running an optimization)' });
      else {
        res.writeHead(200, { 'content-type': img.mime, 'cache-control': 'no-store' });
        res.end(img.bytes);
      }
      return true;
    }
    const image = /^\/api\/images\/([\w.-]+)(\/before-after)?$/.exec(p);
    if (image && req.method === 'GET') {
      const img = await core.resultImage(decodeURIComponent(image[1]), undefined, image[2] ? 'before-after' : 'main');
      if (!img) sendJson(res, 404, { error: 'no such image (expired or deleted)' });
      else {
        res.writeHead(200, { 'content-type': img.mime, 'cache-control': 'private, max-age=3600' });
        res.end(img.bytes);
      }
      return true;
    }
    return false;
  };

  return { routes, messages: () => messages, close: unsubscribe };
}
