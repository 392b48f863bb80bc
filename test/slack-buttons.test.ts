// Buttons under a Slack result (Block Kit actions on the job message), end to end: the real Bolt app and the real
// bot core (fake engine) against the fake Slack, in Socket Mode and HTTP mode. Each button does what its reaction
// (or command) does, refuses what it refuses (privately), and a request delivered twice makes one job.
import { describe, expect, it } from 'vitest';
import { keys } from '../src/state/keys.ts';
import type { App } from '../src/runtime/app.ts';
import { makeTestBot } from './helpers/core-bot.ts';
import type { FakeMessage } from './fakes/slack/server.ts';
import { ALICE, BOB, CHANNEL, slackSetupPerTest, strengthIn, type SlackSetup } from './fakes/slack/setup.ts';

const setup = slackSetupPerTest(makeTestBot);

const seedIn = (m: FakeMessage) => Number(/seed (\d+)/.exec(m.text)?.[1]);
const labels = (m: FakeMessage) => m.blocks.filter((b) => b.type === 'actions').flatMap((b) => b.elements ?? []).map((e) => e.text.text);

/** Runs `/styleclip text` and waits for its result: the job message (with the buttons) and the image. */
async function result(s: SlackSetup<App>, text: string, user = ALICE): Promise<{ job: FakeMessage; image: FakeMessage }> {
  const before = s.slack.messages.filter((m) => m.files.length).length;
  await s.command(user, text);
  const image = (await s.results(before + 1))[before];
  const job = s.slack.message(CHANNEL, image.thread_ts!)!;
  await s.slack.waitFor(() => job.blocks.length, 'the buttons');
  return { job, image };
}

/** Waits for the next result in `threadTs` after `count` images there. */
async function nextInThread(s: SlackSetup<App>, threadTs: string, count: number): Promise<{ job: FakeMessage; image: FakeMessage }> {
  const image = await s.slack.waitFor(() => s.slack.visibleMessages(CHANNEL).filter((m) => m.thread_ts === threadTs && m.files.length)[count], 'the next image');
  const job = await s.slack.waitFor(
    () => s.slack.visibleMessages(CHANNEL).find((m) => m.thread_ts === threadTs && !m.files.length && m.blocks.length && m.text === image.text),
    'its job message',
  );
  return { job, image };
}

const inFlight = async (s: SlackSetup<App>) => (await s.core.queue.inFlight()).length;
const ephemeralsTo = (s: SlackSetup<App>, user: string) => s.slack.ephemerals.filter((e) => e.user === user).map((e) => e.text);

describe('slack result buttons', () => {
  it('the job message of a result carries ➕ ➖ 🎲 ↩ ❌, their ids naming the action and the job', async () => {
    const s = await setup('socket');
    const { job } = await result(s, 'blue eyes seed:7');
    expect(labels(job)).toEqual(['➕ stronger', '➖ weaker', '🎲 new face', '↩ original', '❌ delete']);
    const jobId = await s.core.jobForMessage('slack', `${CHANNEL}:${job.ts}`);
    const ids = job.blocks.flatMap((b) => b.elements ?? []).map((e) => e.action_id);
    expect(ids).toEqual(['stronger', 'weaker', 'reroll', 'original', 'cancel'].map((a) => `sc:${a}:${jobId}`));
    expect(job.blocks[0]).toMatchObject({ type: 'section', text: { type: 'mrkdwn', text: job.text } });
  });

  for (const mode of ['socket', 'http'] as const) {
    it(`➕ re-runs stronger in the thread; the same press delivered twice makes one job (${mode})`, async () => {
      const s = await setup(mode);
      const { job, image } = await result(s, 'blue eyes seed:8');
      await s.press(ALICE, job.ts, '➕', 2);
      const stronger = await nextInThread(s, job.ts, 1);
      expect(strengthIn(stronger.image)).toBeCloseTo(strengthIn(image) * 1.5, 2);
      expect(seedIn(stronger.image)).toBe(8);
      await s.press(ALICE, job.ts, '➕'); // pressed again later: the same request
      await new Promise((r) => setTimeout(r, 300)); // room for a wrongly handled duplicate to show up
      expect(s.slack.visibleMessages(CHANNEL).filter((m) => m.thread_ts === job.ts)).toHaveLength(3); // image, stronger job + image
      expect(await inFlight(s)).toBe(0);
      expect(s.slack.ephemerals).toEqual([]);
    });
  }

  it('buttons keep working after an adapter restart (the id names the job)', async () => {
    const s = await setup('socket');
    const { job, image } = await result(s, 'blue eyes seed:16');
    await s.restartAdapter(); // nothing the adapter kept in memory is left
    await s.press(ALICE, job.ts, '➖');
    const weaker = await nextInThread(s, job.ts, 1);
    expect(strengthIn(weaker.image)).toBeCloseTo(strengthIn(image) / 1.5, 2);
    expect(weaker.job.thread_ts).toBe(job.ts);
  });

  it('someone else pressing is told privately that only the requester can; nothing runs', async () => {
    const s = await setup('socket');
    const { job } = await result(s, 'blue eyes seed:9');
    for (const emoji of ['➕', '🎲', '❌']) await s.press(BOB, job.ts, emoji);
    const answers = await s.slack.waitFor(() => ephemeralsTo(s, BOB).length === 3 && ephemeralsTo(s, BOB), 'three answers');
    expect([...answers].sort()).toEqual([ // presses are handled side by side: answers come in any order
      'Only the person who asked for this edit can delete it.',
      'Only the person who asked for this edit can make it stronger.',
      'Only the person who asked for this edit can try it on a new face.',
    ]);
    expect(await inFlight(s)).toBe(0);
    expect(s.slack.visibleMessages(CHANNEL)).toHaveLength(2);
  });

  it('a press the server rules refuse is refused like the reaction, privately, leaving nothing behind', async () => {
    const s = await setup('socket', { SLACK_ADMIN_USERS: ALICE });
    await s.privateReply(await s.command(ALICE, 'set strength-max 4.1', '/styleclip-admin'));
    const { job } = await result(s, 'blue eyes seed:10');
    await s.press(ALICE, job.ts, '➕');
    const [note] = await s.slack.waitFor(() => ephemeralsTo(s, ALICE).length > 0 && ephemeralsTo(s, ALICE), 'the refusal');
    expect(note).toContain('Strength is already 4.1');
    expect(s.slack.visibleMessages(CHANNEL)).toHaveLength(2);
  });

  it('➖ re-runs weaker; 🎲 runs the same edit on a new face; ↩ shows the original face (strength 0, same seed)', async () => {
    const s = await setup('socket');
    const { job, image } = await result(s, 'blue eyes seed:11');
    await s.press(ALICE, job.ts, '➖');
    const weaker = await nextInThread(s, job.ts, 1);
    expect(strengthIn(weaker.image)).toBeCloseTo(strengthIn(image) / 1.5, 2);

    await s.press(ALICE, weaker.job.ts, '🎲');
    const rerolled = await nextInThread(s, job.ts, 2);
    expect(rerolled.image.text).toContain('*blue eyes*');
    expect(strengthIn(rerolled.image)).toBe(strengthIn(weaker.image));
    expect(seedIn(rerolled.image)).not.toBe(11);

    await s.press(ALICE, rerolled.job.ts, '↩');
    const original = await nextInThread(s, job.ts, 3);
    expect([strengthIn(original.image), seedIn(original.image)]).toEqual([0, seedIn(rerolled.image)]);
    expect(labels(original.job)).toEqual(['🎲 new face', '❌ delete']);
  });

  it('❌ pressed while the image is still being linked (a slow files.info) removes the image message too', async () => {
    const s = await setup('socket');
    s.slack.fileDeletion = 'leaves-tombstone';
    s.slack.delays.set('files.info', 800); // the message that shares the file is known only once files.info answers
    const { job } = await result(s, 'blue eyes seed:15');
    await s.press(ALICE, job.ts, '❌');
    await s.slack.waitFor(() => ephemeralsTo(s, ALICE).includes('Deleted.'), 'the private "Deleted."');
    expect(s.slack.visibleMessages(CHANNEL)).toEqual([]);
  });

  it('❌ removes the job message, the image message and the file; a leftover button or an expired one says it is gone', async () => {
    const s = await setup('socket');
    s.slack.fileDeletion = 'leaves-tombstone';
    const { job, image } = await result(s, 'blue eyes seed:12');
    const fileId = image.files[0];
    await s.press(ALICE, job.ts, '❌');
    await s.slack.waitFor(() => ephemeralsTo(s, ALICE).includes('Deleted.'), 'the private "Deleted."');
    expect(s.slack.files.has(fileId)).toBe(false);
    expect(s.slack.visibleMessages(CHANNEL)).toEqual([]);

    // A workspace that keeps messages: the job message stays, and its buttons find nothing.
    const kept = await result(s, 'blue eyes seed:13');
    s.slack.failures.set('chat.delete', 'cant_delete_message');
    await s.press(ALICE, kept.job.ts, '❌');
    await s.slack.waitFor(() => ephemeralsTo(s, ALICE).filter((t) => t === 'Deleted.').length === 2, 'the second "Deleted."');
    s.slack.failures.delete('chat.delete');
    await s.press(ALICE, kept.job.ts, '➕');
    await s.slack.waitFor(() => ephemeralsTo(s, ALICE).includes('This result is gone: it was deleted or has expired.'), 'gone');

    const expiring = await result(s, 'blue eyes seed:14');
    const jobId = (await s.core.jobForMessage('slack', `${CHANNEL}:${expiring.job.ts}`))!;
    await s.core.store.del(keys.job(jobId)); // what RESULT_TTL_S does
    await s.press(BOB, expiring.job.ts, '🎲');
    await s.slack.waitFor(() => ephemeralsTo(s, BOB).includes('This result is gone: it was deleted or has expired.'), 'gone for an expired one');
    expect(await inFlight(s)).toBe(0);
  });

  it('spoiler on: the image waits behind 👁 show image; a press (anyone\'s) posts it in the thread once', async () => {
    const s = await setup('socket', { SLACK_ADMIN_USERS: ALICE });
    expect(String((await s.privateReply(await s.command(ALICE, 'set spoiler on', '/styleclip-admin'))).text)).toContain('spoiler: on');
    await s.command(ALICE, 'blue eyes seed:15');
    const job = await s.slack.waitFor(() => s.slack.visibleMessages(CHANNEL).find((m) => m.blocks.length), 'the hidden result');
    expect(labels(job)).toEqual(['👁 show image', '➕ stronger', '➖ weaker', '🎲 new face', '↩ original', '❌ delete']);
    expect(job.blocks.some((b) => b.type === 'context' && /hidden/.test(JSON.stringify(b)))).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(s.slack.files.size).toBe(0); // nothing uploaded yet

    await s.press(BOB, job.ts, '👁', 2); // the same press delivered twice
    const [image] = await s.results(1);
    expect(image.thread_ts).toBe(job.ts);
    expect(image.text).toBe(job.text);
    await s.slack.waitFor(() => ephemeralsTo(s, BOB).length > 0, 'the note on the second delivery');
    expect(ephemeralsTo(s, BOB)).toEqual(['The image is already in the thread.']);
    expect(s.slack.files.size).toBe(1);
    expect(labels(job)).toEqual(['➕ stronger', '➖ weaker', '🎲 new face', '↩ original', '❌ delete']);
    expect(job.blocks.some((b) => b.type === 'context')).toBe(false);

    // ❌ removes the revealed image with the rest, as for any result.
    await s.press(ALICE, job.ts, '❌');
    await s.slack.waitFor(() => s.slack.visibleMessages(CHANNEL).length === 0 && s.slack.files.size === 0, 'everything removed');
  });
});
