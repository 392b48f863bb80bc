// Registers the bot's slash commands with Discord (a separate step from running the bot, as in the
// discord.js guide). Per guild when DISCORD_GUILD_ID is set (instant, for development), else globally.
//   npx tsx src/adapters/discord/deploy-commands.ts [--global] [--print]
import { config as loadDotenv } from 'dotenv';
import { COMMANDS } from '../../../commands/index.ts';
import { toDiscordCommands } from './command-json.ts';
import { deployCommands } from './register.ts';

loadDotenv({ quiet: true });
const defs = COMMANDS.map((c) => c.definition);
const args = process.argv.slice(2);
const unknown = args.filter((a) => a !== '--global' && a !== '--print');
if (unknown.length) {
  console.error(`deploy-commands: unknown argument ${unknown[0]} (use --global to register globally, --print to show the JSON)`);
  process.exit(2);
}
if (args.includes('--print')) {
  console.log(JSON.stringify(toDiscordCommands(defs), null, 2));
} else {
  try {
    const { scope, names } = await deployCommands(defs, process.env, { global: args.includes('--global') });
    const where = scope === 'guild' ? `in guild ${process.env.DISCORD_GUILD_ID}` : 'globally';
    console.log(`Registered ${names.length} commands ${where}: ${names.map((n) => `/${n}`).join(', ')}`);
  } catch (err) {
    console.error(`deploy-commands: ${(err as Error).message}`);
    process.exit(1);
  }
}
