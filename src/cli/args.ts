// A small strict flag parser for the CLI. `--name value` and `--name=value`; a value may start
// with '-' (negative strengths), unlike node:util parseArgs in strict mode.
import { EngineError } from '../engine/types.ts';

import { UsageError } from '../errors.ts';

export type FlagSpec = Record<string, 'string' | 'boolean'>;

export interface ParsedArgs {
  flags: Record<string, string | boolean | undefined>;
  positionals: string[];
  help: boolean;
}

/**
 * Parses `argv` against `spec`. Bare words are refused unless `positionals` (only `pack check DIR`
 * takes any), and so are single-dash options: a mistyped `-s 3` must not be silently ignored.
 */
export function parseFlags(argv: readonly string[], spec: FlagSpec, command: string, positionals = false): ParsedArgs {
  const flags: ParsedArgs['flags'] = {};
  const words: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--help' || arg === '-h') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      if (arg.startsWith('-') && arg.length > 1) throw new UsageError(`unknown option ${arg} for ${command} (options are spelled --name); see styleclip ${command} --help`);
      if (!positionals) throw new UsageError(`unexpected argument "${arg}" for ${command}; see styleclip ${command} --help`);
      words.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const type = spec[name];
    if (!type) throw new UsageError(`unknown option --${name} for ${command}; see styleclip ${command} --help`);
    if (type === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`);
      flags[name] = true;
    } else if (eq >= 0) {
      flags[name] = arg.slice(eq + 1);
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`--${name} needs a value; see styleclip ${command} --help`);
      flags[name] = argv[++i];
    }
  }
  return { flags, positionals: words, help };
}

export function str(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags[name];
  return typeof v === 'string' ? v : undefined;
}

export function requireStr(args: ParsedArgs, name: string, command: string): string {
  const v = str(args, name);
  if (v === undefined || v === '') throw new UsageError(`${command} needs --${name}; see styleclip ${command} --help`);
  return v;
}

export function num(args: ParsedArgs, name: string): number | undefined {
  const v = str(args, name);
  if (v === undefined) return undefined;
  const n = v.trim() === '' ? NaN : Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got "${v}"`);
  return n;
}

export function int(args: ParsedArgs, name: string, min: number): number | undefined {
  const n = num(args, name);
  if (n !== undefined && (!Number.isInteger(n) || n < min)) throw new UsageError(`--${name} must be an integer ≥ ${min}, got ${str(args, name)}`);
  return n;
}

/** Seeds: "7" or "1,2,3". */
export function seeds(args: ParsedArgs): number[] | undefined {
  const v = str(args, 'seed');
  if (v === undefined) return undefined;
  const list = v.split(',').map((s) => (s.trim() === '' ? NaN : Number(s)));
  if (list.some((n) => !Number.isInteger(n) || n < 0 || n > 0xffffffff)) {
    throw new UsageError(`--seed must be an integer in 0..4294967295 (or a comma-separated list), got "${v}"`);
  }
  return list;
}

/** Runs an engine-side validation of a flag value; its failure is a usage error (exit 2). */
export function asUsage<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof EngineError) throw new UsageError(err.message);
    throw err;
  }
}
