// Commands: text syntax, validation against server settings, admin rights. Refusals never reach the worker.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseInput } from '../src/core/parse.ts';
import type { App } from '../src/runtime/app.ts';
import styleclip from '../commands/styleclip.ts';
import { blockedWordIn } from '../src/core/plan-edit.ts';
import admin from '../commands/styleclip-admin.ts';
import { ctxFor, makeTestBot, targetFor } from './helpers/core-bot.ts';
import type { CommandInput, InvocationContext } from '../src/core/types.ts';

describe('text syntax', () => {
  const def = styleclip.definition;

  it('splits prompt words from name:value options and coerces types', () => {
    expect(parseInput(def, { kind: 'text', text: 'curly hair strength:3 seed:7' })).toEqual({
      subcommand: undefined,
      options: { prompt: 'curly hair', strength: 3, seed: 7 },
    });
    expect(parseInput(def, { kind: 'text', text: 'smile neutral:"a face" threshold:0.2 method:global' }).options).toEqual({
      prompt: 'smile',
      neutral: 'a face',
      threshold: 0.2,
      method: 'global',
    });
    // "style: punk" has a space after the colon: prompt text, not an option.
    expect(parseInput(def, { kind: 'text', text: 'style: punk' }).options).toEqual({ prompt: 'style: punk' });
  });

  it('refuses unknown options, bad values, duplicates and a missing prompt with a message naming the problem', () => {
    const err = (text: string) => {
      try {
        parseInput(def, { kind: 'text', text });
      } catch (e) {
        return (e as Error).message;
      }
      return 'no error';
    };
    expect(err('hair colour:red')).toMatch(/^Unknown option "colour:"\. Options: method:, strength:/);
    expect(err('hair strength:lots')).toBe('Option strength must be a number, got "lots".');
    expect(err('hair seed:1.5')).toBe('Option seed must be a whole number, got "1.5".');
    expect(err('hair threshold:2')).toBe('Option threshold must be at most 1, got 2.');
    expect(err('hair method:magic')).toBe('Option method must be one of auto, global, mapper, optimize; got "magic".');
    expect(err('hair seed:1 seed:2')).toBe('Option seed is given twice.');
    expect(err('strength:2')).toBe('Missing prompt.');
    expect(err('x'.repeat(201))).toMatch(/too long/);
  });

  it('fills sub-command options in order, the last taking the rest, and checks typed options too', () => {
    expect(parseInput(admin.definition, { kind: 'text', text: 'set strength-max 8' })).toEqual({
      subcommand: 'set',
      options: { key: 'strength-max', value: '8' },
    });
    expect(parseInput(admin.definition, { kind: 'text', text: 'block bad word, other' }).options).toEqual({ words: 'bad word, other' });
    expect(() => parseInput(admin.definition, { kind: 'text', text: 'explode' })).toThrow('Unknown sub-command "explode"');
    expect(() => parseInput(admin.definition, { kind: 'text', text: 'set colour red' })).toThrow(/key must be one of/);
    expect(() => parseInput(def, { kind: 'options', options: { prompt: 'x', bogus: 1 } })).toThrow('Unknown option "bogus".');
    expect(parseInput(def, { kind: 'options', options: { prompt: 'x', strength: 2 } }).options).toEqual({ prompt: 'x', strength: 2 });
  });

  it('matches blocked words as whole words in any case', () => {
    expect(blockedWordIn('Very BAD hair', ['bad'])).toBe('bad');
    expect(blockedWordIn('badger hair', ['bad'])).toBeUndefined();
    expect(blockedWordIn('a red hat on', ['red hat'])).toBe('red hat');
  });
});

describe('validation through the core', () => {
  let bot: App;
  const adminCtx = () => ctxFor('root', { isPlatformAdmin: true });
  const run = (name: string, text: string, ctx: InvocationContext = ctxFor('alice')) =>
    bot.invoke(name, { kind: 'text', text } as CommandInput, ctx, targetFor(ctx));

  beforeAll(async () => {
    bot = await makeTestBot();
    await run('styleclip-admin', 'set strength-max 6', adminCtx());
    await run('styleclip-admin', 'block forbidden, red hat', adminCtx());
  });
  afterAll(() => bot.close());

  describe.each<[string, string, RegExp]>([
    ['styleclip', 'curly hair colour:red', /^Unknown option "colour:"/],
    ['styleclip', 'a forbidden smile', /blocked on this server/],
    ['styleclip', 'a Red Hat', /blocked on this server/],
    ['styleclip', 'smile strength:9', /strength 9 is outside this server's range -10 to 6/],
    ['styleclip', 'smile method:mapper', /has no mapper for "smile"\. Mappers: curly hair/],
    ['styleclip', 'smile seed:1 source:playground-x', /either seed or source/],
    ['styleclip', 'smile source:playground-nothing', /No finished result with id "playground-nothing"/],
    ['styleclip-admin', 'set strength-max 3', /^Only server admins/],
    ['styleclip-admin', 'block anything', /^Only server admins/],
    ['styleclip-nope', '', /^Unknown command/],
  ])('/%s %s', (name, text, expected) => {
    it(`is refused privately: ${expected}`, async () => {
      const reply = await run(name, text);
      expect(reply.error, `${name} ${text}`).toBe(true);
      expect(reply.ephemeral).toBe(true);
      expect(reply.text).toMatch(expected);
      expect(reply.job).toBeUndefined();
    });

    it('queues nothing, and the worker runs nothing', async () => {
      await run(name, text);
      expect(await bot.queue.inFlight()).toEqual([]);
      expect(bot.workerStats()).toMatchObject({ jobs: 0, batches: 0 });
    });
  });

  it('a non-admin’s attempt at a setting changes nothing', async () => {
    await run('styleclip-admin', 'set strength-max 3');
    expect((await run('styleclip-admin', 'show')).text).toContain('strength: -10 to 6');
  });

  it('refuses edits in channels the admin did not enable, naming the enabled ones', async () => {
    await run('styleclip-admin', 'set channels c9, c10', adminCtx());
    try {
      const reply = await run('styleclip', 'smile');
      expect(reply).toMatchObject({ error: true, text: expect.stringMatching(/not enabled in this channel.*c9, c10/) });
      expect(await bot.queue.inFlight()).toEqual([]);
    } finally {
      await run('styleclip-admin', 'set channels all', adminCtx());
    }
  });

  it('refuses admin settings in DMs', async () => {
    const dm = await run('styleclip-admin', 'set method global', ctxFor('root', { isPlatformAdmin: true, serverId: null }));
    expect(dm).toMatchObject({ error: true, text: expect.stringMatching(/not a DM/) });
  });

  it.each<[string, RegExp]>([
    ['set strength-min 7', /strength-min \(7\) must not be above strength-max \(6\)/],
    ['set threshold 3', /threshold must be from 0 to 1/],
    ['set user-waiting -1', /whole number from 0 to 10000/],
    // Beyond the engine's |α| limit a job would be queued only to fail in the worker.
    ['set strength-max 60', /strength-max 60 is out of range: use −50…50/],
    ['set strength-min -51', /strength-min -51 is out of range: use −50…50/],
    ['set pack nope', /No pack named "nope"\. Available: testpack/],
  ])('checks the value of /styleclip-admin %s', async (text, expected) => {
    expect((await run('styleclip-admin', text, adminCtx())).text).toMatch(expected);
  });

  it('logs admin changes, without the blocked words themselves', async () => {
    const log = await run('styleclip-admin', 'log', adminCtx());
    expect(log.text).toMatch(/root: set strength-max = 6/);
    expect(log.text).toMatch(/root: block 2 word\(s\)/);
    expect(log.text).not.toMatch(/forbidden/);
  });

  it('picks the mapper for a prompt that has one (method auto)', async () => {
    const ctx = ctxFor('bob');
    const mapper = await bot.invoke('styleclip', { kind: 'options', options: { prompt: 'Curly Hair', seed: 1 } }, ctx, targetFor(ctx));
    expect(mapper.text).toMatch(/^Queued \*\*Curly Hair\*\* · mapper · strength 1 /);
  });

  it('picks global for a prompt without a mapper (method auto)', async () => {
    const global = await run('styleclip', 'blue eyes seed:2', ctxFor('bob'));
    expect(global.text).toMatch(/^Queued \*\*blue eyes\*\* · global · strength 4\.1 · threshold auto/);
  });

  it('show reads naturally: a default left to the pack says the pack\'s value', async () => {
    const shown = (await run('styleclip-admin', 'show')).text;
    expect(shown).toContain("strength: -10 to 6, default 4.1 (the pack's; mapper edits 1)");
    expect(shown).toContain("threshold: automatic (the pack's)");
    expect(shown).toContain("pack: testpack (the deployment's)");
    expect(shown).not.toMatch(/default default|: default\b/);
    const set = (await run('styleclip-admin', 'set strength-default 2', adminCtx())).text;
    expect(set).toContain('strength: -10 to 6, default 2\n');
    const capped = (await run('styleclip-admin', 'set strength-max 3', adminCtx())).text;
    expect(capped).toContain('strength: -10 to 3, default 2\n');
    await run('styleclip-admin', 'reset strength-default', adminCtx());
    expect((await run('styleclip-admin', 'show')).text).toContain("default 3 (the pack's 4.1, kept within the range; mapper edits 1)");
    await run('styleclip-admin', 'set strength-max 6', adminCtx());
    expect(shown).toContain('spoiler: off');
    expect((await run('styleclip-admin', 'set spoiler maybe', adminCtx())).text).toBe('spoiler must be on or off.');
    expect((await run('styleclip-admin', 'set spoiler on', adminCtx())).text).toContain('spoiler: on (results are hidden until someone asks to see them)');
    expect((await run('styleclip-admin', 'reset spoiler', adminCtx())).text).toContain('spoiler: off');
  });

  it('answers help privately, with an example and a word on untrained packs', async () => {
    const help = await run('styleclip-help', '');
    expect(help).toMatchObject({ ephemeral: true });
    expect(help.text).toContain('/styleclip curly hair');
    expect(help.text).toContain('untrained');
  });

  it('tells a user their limits in /styleclip-info', async () => {
    const info = await run('styleclip-info', '', ctxFor('bob'));
    expect(info.text).toMatch(/Your limit: 3 running \+ 10 waiting/);
  });
});
