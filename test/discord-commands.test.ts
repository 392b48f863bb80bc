// Slash command JSON from the core's definitions, and registering it (per guild / globally).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../commands/index.ts';
import { toCommandInput, toDiscordCommands } from '../src/adapters/discord/command-json.ts';
import { deployCommands } from '../src/adapters/discord/register.ts';
import { FakeDiscord } from './fakes/discord/fake-discord.ts';
import { STUB_COMMANDS } from './fakes/discord/stub-core.ts';

describe('discord command JSON', () => {
  it('keeps types, ranges, choices and autocomplete, puts required options first, gates admin commands', () => {
    const [styleclip, settings] = toDiscordCommands(STUB_COMMANDS) as any[];
    expect(styleclip).toMatchObject({ type: 1, name: 'styleclip', default_member_permissions: null, contexts: [0, 1], integration_types: [0] });
    expect(styleclip.options).toEqual([
      { type: 3, name: 'prompt', description: 'What to change, e.g. curly hair', required: true, autocomplete: true, max_length: 200 },
      { type: 10, name: 'strength', description: 'How far to push', required: false, min_value: -10, max_value: 10 },
      { type: 3, name: 'method', description: 'global or mapper', required: false, choices: [{ name: 'global', value: 'global' }, { name: 'mapper', value: 'mapper' }] },
      { type: 4, name: 'seed', description: 'Face seed', required: false, min_value: 0 },
    ]);
    expect(settings.default_member_permissions).toBe('32'); // Manage Server
    expect(settings.options).toEqual([
      { type: 1, name: 'set', description: 'Change a setting', options: [{ type: 10, name: 'max-strength', description: 'Upper bound', required: true }] },
    ]);
  });

  it("accepts every command the core defines, within Discord's limits", () => {
    const json = toDiscordCommands(COMMANDS.map((c) => c.definition)) as any[];
    expect(json.map((c) => c.name)).toEqual(COMMANDS.map((c) => c.definition.name));
    for (const c of json) {
      expect(c.description.length).toBeLessThanOrEqual(100);
      expect(c.options.length).toBeLessThanOrEqual(25);
    }
  });

  it('refuses names Discord would reject, naming the culprit', () => {
    expect(() => toDiscordCommands([{ name: 'Style Clip', description: 'x', options: [] }])).toThrow(/"Style Clip" is not a valid name/);
  });

  it('turns resolved options (and a subcommand) into the core input', () => {
    expect(toCommandInput([{ name: 'prompt', type: 3, value: 'curly hair' }, { name: 'seed', type: 4, value: 3 }])).toEqual({ kind: 'options', options: { prompt: 'curly hair', seed: 3 } });
    expect(toCommandInput([{ name: 'set', type: 1, options: [{ name: 'key', type: 3, value: 'method' }] }])).toEqual({ kind: 'options', subcommand: 'set', options: { key: 'method' } });
  });
});

describe('deploy-commands', () => {
  let discord: FakeDiscord;
  beforeAll(async () => { discord = await new FakeDiscord().start(); });
  afterAll(async () => { await discord.close(); });

  it('registers per guild when DISCORD_GUILD_ID is set, globally otherwise or with --global', async () => {
    const env = { DISCORD_TOKEN: discord.botToken, DISCORD_APPLICATION_ID: discord.applicationId, DISCORD_API_BASE: discord.apiBase };
    expect(await deployCommands(STUB_COMMANDS, { ...env, DISCORD_GUILD_ID: discord.guildId })).toEqual({ scope: 'guild', names: ['styleclip', 'styleclip-settings'] });
    expect(discord.commands.get(discord.guildId)?.map((c) => c.default_member_permissions)).toEqual([null, '32']);
    expect(await deployCommands(STUB_COMMANDS, env)).toMatchObject({ scope: 'global' });
    expect(await deployCommands(STUB_COMMANDS, { ...env, DISCORD_GUILD_ID: discord.guildId }, { global: true })).toMatchObject({ scope: 'global' });
    expect(discord.commands.get('global')).toHaveLength(2);
  });

  it('says what is missing or wrong in one line', async () => {
    await expect(deployCommands(STUB_COMMANDS, { DISCORD_TOKEN: 'x' })).rejects.toThrow(/DISCORD_APPLICATION_ID is not set/);
    const bad = deployCommands(STUB_COMMANDS, { DISCORD_TOKEN: 'wrong', DISCORD_APPLICATION_ID: discord.applicationId, DISCORD_API_BASE: discord.apiBase });
    await expect(bad).rejects.toThrow(/^registering Discord commands failed: 401/);
  });
});
