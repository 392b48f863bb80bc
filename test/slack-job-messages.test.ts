// How a job's Slack messages follow its updates: in order, throttled, one upload, never overwritten by stale news.
import { webApi } from '@slack/bolt';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { JobMessages } from '../src/adapters/slack/job-messages.ts';
import type { JobUpdate } from '../src/core/types.ts';
import { silentLogger } from '../src/log.ts';
import { FakeSlack } from './fakes/slack/server.ts';
import { SECRETS } from './fakes/slack/setup.ts';

const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex');
const CH = 'CJOBS0001';

let slack: FakeSlack;
let jobs: JobMessages;
let links: Map<string, string>;
let rootTs: string;

beforeEach(async () => {
  slack = await new FakeSlack(SECRETS).listen();
  slack.addChannel(CH, [slack.botUserId]);
  links = new Map();
  const client = new webApi.WebClient(SECRETS.botToken, { slackApiUrl: slack.apiUrl, retryConfig: { retries: 0 } });
  const core = {
    linkMessage: async (_p: string, key: string, jobId: string) => void links.set(key, jobId),
    resultImage: async (jobId: string) => ({ bytes: PNG, mime: 'image/png' as const, filename: `${jobId}.png` }),
    messagesForJob: async (_p: string, jobId: string) => [...links].filter(([, j]) => j === jobId).map(([k]) => k),
  };
  jobs = new JobMessages(core, client, silentLogger);
  rootTs = (await client.chat.postMessage({ channel: CH, text: 'placeholder' })).ts as string;
});
afterEach(() => slack.close());

const update = (status: JobUpdate['status'], text: string): JobUpdate => ({
  jobId: 'slack-j1',
  status,
  text,
  target: { platform: 'slack', channelId: CH, messageId: rootTs, threadId: rootTs },
  requesterId: 'UALICE01',
});

describe('JobMessages', () => {
  describe('given 10%, 20% within 2 s, done, a late 90% and done again, all at once', () => {
    beforeEach(async () => {
      await Promise.all([
        jobs.deliver(update('running', 'Running 10%')),
        jobs.deliver(update('running', 'Running 20%')), // same status within 2 s: dropped
        jobs.deliver(update('completed', 'Done')),
        jobs.deliver(update('running', 'Running 90%')), // late: dropped
        jobs.deliver(update('completed', 'Done')), // repeated: no second upload
      ]);
    });
    const images = () => slack.visibleMessages(CH).filter((m) => m.files.length);

    it('shows 10% and then done: progress within 2 s and news after the end are dropped', () => {
      const root = slack.message(CH, rootTs)!;
      expect([...root.edits, root.text]).toEqual(['placeholder', ':art: <@UALICE01> Running 10%', ':white_check_mark: <@UALICE01> Done']);
    });

    it('uploads the image once, in the job’s thread', () => {
      expect(images()).toHaveLength(1);
      expect(images()[0].thread_ts).toBe(rootTs);
      expect(slack.files.get(images()[0].files[0])!.bytes).toEqual(PNG);
    });

    it('links the image’s message to the job', () => {
      expect(links.get(`${CH}:${images()[0].ts}`)).toBe('slack-j1');
    });
  });

  it('does not overwrite a running job with the queued reply that arrived later', async () => {
    await jobs.deliver(update('running', 'Running 10%'));
    await jobs.showReply({ text: 'Queued (#1)', job: { id: 'slack-j1', position: 1 } }, { channel: CH, ts: rootTs, threadTs: rootTs }, 'UALICE01', async () => {});
    expect(slack.message(CH, rootTs)!.text).toBe(':art: <@UALICE01> Running 10%');
    expect(links.get(`${CH}:${rootTs}`)).toBe('slack-j1');
  });

  it('says so on the job message when the upload fails', async () => {
    await jobs.deliver(update('running', 'Running'));
    slack.channels.get(CH)!.delete(slack.botUserId); // removed from the channel meanwhile
    await jobs.deliver(update('completed', 'Done'));
    expect(slack.message(CH, rootTs)!.text).toBe(":white_check_mark: <@UALICE01> Done\n:warning: I couldn't upload the image (not_in_channel).");
  });
});
