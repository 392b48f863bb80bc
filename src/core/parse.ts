// Turns a command's input (typed options or free text) into checked option values.
// Text syntax: `/styleclip curly hair strength:3 seed:7` — `name:value` tokens are options
// (quote values with spaces: neutral:"a face"); the other words fill the free-text option,
// or, for sub-commands, the sub-command's options in order (the last one takes the rest).
import type { Attachment, CommandDefinition, CommandInput, CommandOption, OptionValue } from './types.ts';
import { CommandRefusal, type CommandArgs, type OptionValues } from './command.ts';

const TOKEN = /(\S+?):"([^"]*)"|(\S+?):(\S+)|"([^"]*)"|(\S+)/g;
const OPTION_NAME = /^[a-z][a-z0-9_-]*$/i;

function isAttachment(v: unknown): v is Attachment {
  return typeof v === 'object' && v !== null && typeof (v as Attachment).size === 'number';
}

function coerce(option: CommandOption, raw: OptionValue): OptionValue {
  const name = option.name;
  if (option.type === 'attachment') {
    if (!isAttachment(raw)) throw new CommandRefusal(`Option ${name} takes a file: attach it to the message.`);
    return raw;
  }
  if (isAttachment(raw)) throw new CommandRefusal(`Option ${name} does not take a file.`);
  let value: string | number | boolean = raw;
  if (option.type === 'number' || option.type === 'integer') {
    const n = typeof raw === 'number' ? raw : Number(String(raw).trim());
    if (String(raw).trim() === '' || !Number.isFinite(n)) throw new CommandRefusal(`Option ${name} must be a number, got "${raw}".`);
    if (option.type === 'integer' && !Number.isInteger(n)) throw new CommandRefusal(`Option ${name} must be a whole number, got "${raw}".`);
    if (option.min !== undefined && n < option.min) throw new CommandRefusal(`Option ${name} must be at least ${option.min}, got ${n}.`);
    if (option.max !== undefined && n > option.max) throw new CommandRefusal(`Option ${name} must be at most ${option.max}, got ${n}.`);
    value = n;
  } else if (option.type === 'boolean') {
    if (typeof raw === 'boolean') value = raw;
    else if (/^(true|yes|on|1)$/i.test(String(raw))) value = true;
    else if (/^(false|no|off|0)$/i.test(String(raw))) value = false;
    else throw new CommandRefusal(`Option ${name} must be true or false, got "${raw}".`);
  } else {
    value = String(raw).trim();
    if (option.maxLength !== undefined && value.length > option.maxLength) {
      throw new CommandRefusal(`Option ${name} is too long (${value.length} characters, at most ${option.maxLength}).`);
    }
  }
  if (option.choices && !option.choices.some((c) => c.value === value)) {
    throw new CommandRefusal(`Option ${name} must be one of ${option.choices.map((c) => c.value).join(', ')}; got "${value}".`);
  }
  return value;
}

function optionsFor(def: CommandDefinition, subcommand?: string): CommandOption[] {
  if (!def.subcommands?.length) return def.options;
  const sub = def.subcommands.find((s) => s.name === subcommand);
  if (!sub) {
    const names = def.subcommands.map((s) => s.name).join(', ');
    throw new CommandRefusal(subcommand ? `Unknown sub-command "${subcommand}". Try one of: ${names}.` : `Say what to do: ${names}.`);
  }
  return sub.options;
}

function finish(options: CommandOption[], values: OptionValues): OptionValues {
  for (const option of options) {
    if (option.required && (values[option.name] === undefined || values[option.name] === '')) {
      throw new CommandRefusal(`Missing ${option.name}.`);
    }
  }
  return values;
}

export function parseInput(def: CommandDefinition, input: CommandInput): CommandArgs {
  if (input.kind === 'options') {
    const options = optionsFor(def, input.subcommand);
    const values: OptionValues = {};
    for (const [name, raw] of Object.entries(input.options)) {
      const option = options.find((o) => o.name === name);
      if (!option) throw new CommandRefusal(`Unknown option "${name}".`);
      values[name] = coerce(option, raw);
    }
    return { subcommand: input.subcommand, options: finish(options, values) };
  }

  const tokens = [...input.text.matchAll(TOKEN)];
  let subcommand: string | undefined;
  if (def.subcommands?.length) {
    const first = tokens.shift();
    subcommand = first?.[0].toLowerCase();
  }
  const options = optionsFor(def, subcommand);
  const values: OptionValues = {};
  const words: string[] = [];
  for (const t of tokens) {
    const name = t[1] ?? t[3];
    const raw = t[2] ?? t[4];
    if (name !== undefined && raw !== undefined && OPTION_NAME.test(name)) {
      const option = options.find((o) => o.name === name.toLowerCase());
      if (!option) {
        const known = options.filter((o) => o.name !== def.freeTextOption).map((o) => `${o.name}:`);
        throw new CommandRefusal(`Unknown option "${name}:".${known.length ? ` Options: ${known.join(', ')}.` : ''}`);
      }
      if (values[option.name] !== undefined) throw new CommandRefusal(`Option ${option.name} is given twice.`);
      values[option.name] = coerce(option, raw);
    } else {
      words.push(t[5] ?? t[0]);
    }
  }
  if (words.length) {
    const free = subcommand === undefined ? def.freeTextOption : def.subcommands?.find((c) => c.name === subcommand)?.freeTextOption;
    if (free) {
      const option = options.find((o) => o.name === free)!;
      if (values[free] !== undefined) throw new CommandRefusal(`Option ${free} is given twice.`);
      values[free] = coerce(option, words.join(' '));
    } else {
      const open = options.filter((o) => values[o.name] === undefined);
      if (!open.length) throw new CommandRefusal(`Unexpected text "${words.join(' ')}".`);
      open.forEach((option, i) => {
        const last = i === open.length - 1;
        const part = last ? words.splice(0).join(' ') : words.shift();
        if (part !== undefined && part !== '') values[option.name] = coerce(option, part);
      });
    }
  }
  // Files sent with the text fill the attachment options in order.
  const files = [...(input.attachments ?? [])];
  for (const option of options.filter((o) => o.type === 'attachment')) {
    const file = files.shift();
    if (file) values[option.name] = coerce(option, file);
  }
  if (files.length) throw new CommandRefusal(files.length === input.attachments!.length ? 'This command takes no file.' : 'Too many files attached.');
  return { subcommand, options: finish(options, values) };
}
