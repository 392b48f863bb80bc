// "Edit with StyleCLIP" on a message with an image: Slack's slash commands carry no files, so a message
// shortcut opens a modal asking for the prompt (views.open with the shortcut's trigger_id, within 3 s), and its
// submission runs /styleclip with the message's file as the attachment: files.info first (size and type
// as Slack reports them, checked before any download), then the core downloads `url_private` through the
// fetcher below, which takes only Slack's file host and sends the bot token.
import type { App } from '@slack/bolt';
import type { Attachment, CommandReply, InvocationContext, PhotoFetcher } from '../../core/types.ts';
import { originFetcher } from '../photo-fetch.ts';
import type { SlackDeps } from './deps.ts';
import { errorCode, notInChannelText, pendingText } from './messages.ts';

export const PHOTO_SHORTCUT = 'styleclip_edit_photo';
export const PHOTO_MODAL = 'styleclip_photo_modal';
/** Where Slack serves files (url_private, url_private_download). */
export const SLACK_FILE_ORIGINS = ['https://files.slack.com'];

/** Slack's file host with the bot token; with SLACK_API_URL set (a stand-in for Slack), that origin too. */
export function slackPhotoFetcher(botToken: string, apiUrl?: string): PhotoFetcher {
  const origins = apiUrl ? [...SLACK_FILE_ORIGINS, new URL(apiUrl).origin] : SLACK_FILE_ORIGINS;
  return originFetcher(origins, () => ({ Authorization: `Bearer ${botToken}` }));
}

interface ShortcutFile { id?: string; mimetype?: string; name?: string }
interface ModalState { channel: string; threadTs: string; fileId: string }

const isImage = (f: ShortcutFile) => /^image\//i.test(f.mimetype ?? '');

/** The modal: the prompt (required) and an optional strength, with where to answer in private_metadata. */
function modal(state: ModalState, fileName: string) {
  return {
    type: 'modal' as const,
    callback_id: PHOTO_MODAL,
    private_metadata: JSON.stringify(state),
    title: { type: 'plain_text' as const, text: 'Edit with StyleCLIP' },
    submit: { type: 'plain_text' as const, text: 'Edit' },
    close: { type: 'plain_text' as const, text: 'Cancel' },
    blocks: [
      { type: 'context', elements: [{ type: 'mrkdwn', text: `Photo: ${fileName.replace(/[<>&*_~`]/g, '')}` }] },
      {
        type: 'input',
        block_id: 'prompt',
        label: { type: 'plain_text', text: 'What should change?' },
        element: { type: 'plain_text_input', action_id: 'value', max_length: 300, placeholder: { type: 'plain_text', text: 'curly hair' } },
      },
      {
        type: 'input',
        block_id: 'strength',
        optional: true,
        label: { type: 'plain_text', text: 'Strength' },
        element: { type: 'plain_text_input', action_id: 'value', max_length: 8, placeholder: { type: 'plain_text', text: 'e.g. 3' } },
      },
    ],
  };
}

export function registerPhotoShortcut(app: App, deps: SlackDeps): void {
  const { client, log } = deps;

  app.shortcut({ callback_id: PHOTO_SHORTCUT, type: 'message_action' }, async ({ shortcut, ack, respond }) => {
    await ack();
    const files = ((shortcut.message as { files?: ShortcutFile[] }).files ?? []).filter((f) => f.id);
    const file = files.find(isImage);
    const tell = (text: string) => respond({ response_type: 'ephemeral', replace_original: false, text });
    if (!file) {
      // Nothing is downloaded: Slack's own description of the files says there is no image.
      await tell(files.length ? 'That file is not an image: use *Edit with StyleCLIP* on a message with a JPEG, PNG, WebP, GIF, TIFF or HEIF photo.' : 'That message has no image: use *Edit with StyleCLIP* on a message with a photo.');
      return;
    }
    const message = shortcut.message as { ts: string; thread_ts?: string };
    const state: ModalState = { channel: shortcut.channel.id, threadTs: message.thread_ts ?? message.ts, fileId: file.id! };
    try {
      await client.views.open({ trigger_id: shortcut.trigger_id, view: modal(state, file.name ?? 'image') });
    } catch (err) {
      log.warn({ err: errorCode(err) }, 'slack: photo modal not opened');
      await tell(`I couldn't open the form (${errorCode(err)}). Please try again.`);
    }
  });

  app.view(PHOTO_MODAL, async ({ ack, view, body }) => {
    const values = view.state.values as Record<string, Record<string, { value?: string | null }>>;
    const prompt = (values.prompt?.value?.value ?? '').trim();
    const strength = (values.strength?.value?.value ?? '').trim();
    if (!prompt) return void (await ack({ response_action: 'errors', errors: { prompt: 'Say what should change, e.g. curly hair.' } }));
    if (strength && !/^-?\d+(\.\d+)?$/.test(strength)) return void (await ack({ response_action: 'errors', errors: { strength: 'A number, e.g. 3.' } }));
    await ack();
    const state = JSON.parse(view.private_metadata) as ModalState;
    await runPhotoEdit(deps, state, { id: body.user.id, name: body.user.name }, body.team?.id ?? null, strength ? `${prompt} strength:${strength}` : prompt, view.id);
  });
}

async function runPhotoEdit(deps: SlackDeps, state: ModalState, user: { id: string; name: string }, teamId: string | null, text: string, requestId: string): Promise<void> {
  const { core, client, log } = deps;
  const { channel, threadTs } = state;
  const tell = (t: string) => client.chat.postEphemeral({ channel, user: user.id, text: t, thread_ts: threadTs }).catch((err: unknown) => log.warn({ err: errorCode(err) }, 'slack: ephemeral note not posted'));
  // What Slack says about the file (size, type, where it lives), before any byte of it is read.
  let file: Attachment;
  try {
    const info = (await client.files.info({ file: state.fileId })).file as { url_private_download?: string; url_private?: string; size?: number; mimetype?: string; name?: string };
    file = { url: info.url_private_download ?? info.url_private, size: Number(info.size), contentType: info.mimetype || undefined, name: info.name };
  } catch (err) {
    await tell(`I couldn't read that file (${errorCode(err)}): it may have been deleted, or I can't see this channel.`);
    return;
  }
  let ts: string;
  try {
    const posted = await client.chat.postMessage({ channel, thread_ts: threadTs, text: pendingText(user.id, `Edit with StyleCLIP: ${text}`) });
    ts = posted.ts as string;
  } catch (err) {
    const code = errorCode(err);
    await tell(code === 'not_in_channel' || code === 'channel_not_found' ? notInChannelText(channel, undefined) : `I couldn't post in this channel (${code}), so nothing was queued.`);
    return;
  }
  const ctx: InvocationContext = {
    platform: 'slack',
    serverId: channel.startsWith('D') ? null : teamId,
    channelId: channel,
    user,
    isPlatformAdmin: false,
    requestId,
  };
  let reply: CommandReply;
  try {
    reply = await core.invoke('styleclip', { kind: 'text', text, attachments: [file] }, ctx, { platform: 'slack', channelId: channel, messageId: ts, threadId: threadTs });
  } catch (err) {
    log.error({ err }, 'slack photo edit failed');
    reply = { text: 'Sorry, something went wrong on my side. Please try again.', error: true };
  }
  await deps.jobs.showReply(reply, { channel, ts, threadTs }, user.id, tell);
}
