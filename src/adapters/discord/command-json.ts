// Platform-neutral command definitions → Discord application command JSON (what deploy-commands
// registers) and Discord's typed options → the core's CommandInput.
import {
  ApplicationCommandOptionType,
  ApplicationCommandType,
  ApplicationIntegrationType,
  InteractionContextType,
  PermissionFlagsBits,
  type APIApplicationCommandBasicOption,
  type APIApplicationCommandOption,
  type CommandInteractionOption,
  type RESTPutAPIApplicationCommandsJSONBody,
} from 'discord.js';
import type { CommandDefinition, CommandInput, CommandOption, OptionType, OptionValue } from '../../core/types.ts';

const OPTION_TYPES: Record<OptionType, ApplicationCommandOptionType> = {
  string: ApplicationCommandOptionType.String,
  integer: ApplicationCommandOptionType.Integer,
  number: ApplicationCommandOptionType.Number,
  boolean: ApplicationCommandOptionType.Boolean,
  attachment: ApplicationCommandOptionType.Attachment,
};

// Discord's rules for names (lowercase, 1–32) and descriptions (1–100 characters).
const NAME = /^[-_\p{Ll}\p{Lo}\p{N}]{1,32}$/u;

function checkName(name: string, where: string): string {
  if (!NAME.test(name)) throw new Error(`Discord command ${where}: "${name}" is not a valid name (lowercase, 1-32 characters, no spaces)`);
  return name;
}

function description(text: string): string {
  const t = text.trim() || '-';
  return t.length > 100 ? `${t.slice(0, 99)}…` : t;
}

function toOption(o: CommandOption, command: string): APIApplicationCommandBasicOption {
  const option: Record<string, unknown> = {
    type: OPTION_TYPES[o.type],
    name: checkName(o.name, `${command} option`),
    description: description(o.description),
    required: o.required ?? false,
  };
  if (o.choices?.length) option.choices = o.choices.slice(0, 25).map((c) => ({ name: description(c.name), value: c.value }));
  else if (o.autocomplete && o.type !== 'boolean') option.autocomplete = true;
  if (o.type === 'integer' || o.type === 'number') {
    if (o.min !== undefined) option.min_value = o.min;
    if (o.max !== undefined) option.max_value = o.max;
  }
  if (o.type === 'string') {
    if (o.min !== undefined) option.min_length = o.min;
    if (o.maxLength !== undefined) option.max_length = Math.min(o.maxLength, 6000);
  }
  return option as unknown as APIApplicationCommandBasicOption;
}

/** Discord wants required options before optional ones. */
function toOptions(options: CommandOption[], command: string): APIApplicationCommandBasicOption[] {
  return [...options.filter((o) => o.required), ...options.filter((o) => !o.required)].map((o) => toOption(o, command));
}

/** The JSON body for `PUT /applications/{app}[/guilds/{guild}]/commands` (a bulk overwrite). */
export function toDiscordCommands(defs: CommandDefinition[]): RESTPutAPIApplicationCommandsJSONBody {
  return defs.map((def) => {
    const options: APIApplicationCommandOption[] = def.subcommands?.length
      ? def.subcommands.map((s) => ({
          type: ApplicationCommandOptionType.Subcommand,
          name: checkName(s.name, `${def.name} subcommand`),
          description: description(s.description),
          options: toOptions(s.options, `${def.name} ${s.name}`),
        }))
      : toOptions(def.options, def.name);
    return {
      type: ApplicationCommandType.ChatInput,
      name: checkName(def.name, 'name'),
      description: description(def.description),
      options,
      // Hidden from non-admins by Discord; admins can loosen it, so the core checks again.
      default_member_permissions: def.adminOnly ? PermissionFlagsBits.ManageGuild.toString() : null,
      // Servers and DMs with the bot (DMs use the user's own defaults).
      contexts: [InteractionContextType.Guild, InteractionContextType.BotDM],
      integration_types: [ApplicationIntegrationType.GuildInstall],
    };
  });
}

/** The options Discord resolved (after the subcommand level, if any) → the core's input. */
export function toCommandInput(data: readonly CommandInteractionOption[]): CommandInput {
  const sub = data.find((o) => o.type === ApplicationCommandOptionType.Subcommand);
  const leaves = sub ? (sub.options ?? []) : data;
  const options: Record<string, OptionValue> = {};
  for (const o of leaves) {
    if (o.type === ApplicationCommandOptionType.Attachment) {
      // The resolved attachment: where Discord hosts it and what Discord says it is (checked before any download).
      const a = o.attachment;
      if (a) options[o.name] = { url: a.url, size: a.size, contentType: a.contentType ?? undefined, name: a.name };
    } else if (o.value !== undefined) options[o.name] = o.value;
  }
  return { kind: 'options', ...(sub ? { subcommand: sub.name } : {}), options };
}
