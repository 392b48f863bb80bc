// The bot's commands, in the order help lists them. The bot and `npm run discord:deploy` both read this list.
import type { Command } from '../src/core/command.ts';
import styleclip from './styleclip.ts';
import admin from './styleclip-admin.ts';
import help from './styleclip-help.ts';
import info from './styleclip-info.ts';
import cancel from './styleclip-cancel.ts';

export const COMMANDS: Command[] = [styleclip, admin, help, info, cancel];
