// `styleclip` command dispatcher. Exit codes: 0 ok, 2 usage, 1 failure; errors are one line.
// bin/styleclip.mjs loads main.ts, which runs this with the process arguments.
import { EngineError } from '../engine/types.ts';
import { UsageError } from '../errors.ts';

const USAGE = `usage: styleclip <command> [options]   (styleclip <command> --help for details)

  generate     render images from seeds or latents
  edit         edit images from text (global directions or a latent mapper)
  direction    write a text direction ΔS and print its channel count
  invert       find, align and encode the face of a photo to W+ (.npy)
  bench        time the engine on a pack (--json)
  bench-suite  benchmarks on the tiny pack and a full-size random pack (npm run bench)
  pack check   validate a model pack
  start        bot + worker in one process (playground when no platform tokens)
  bot          platform adapters only
  worker       job worker only`;

type Runner = (argv: string[]) => Promise<number | void>;

const COMMANDS: Record<string, () => Promise<Runner>> = {
  generate: async () => (await import('./commands/generate.ts')).run,
  edit: async () => (await import('./commands/edit.ts')).run,
  direction: async () => (await import('./commands/direction.ts')).run,
  invert: async () => (await import('./commands/invert.ts')).run,
  bench: async () => (await import('./commands/bench.ts')).run,
  'bench-suite': async () => (await import('./commands/bench-suite.ts')).run,
  pack: async () => (await import('./commands/pack.ts')).run,
  start: async () => (await import('../runtime/cli.ts')).runStart,
  bot: async () => (await import('../runtime/cli.ts')).runBot,
  worker: async () => (await import('../runtime/cli.ts')).runWorker,
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(USAGE);
    return command === undefined ? 2 : 0;
  }
  const load = COMMANDS[command];
  if (!load) {
    console.error(`error: unknown command "${command}"; run styleclip --help`);
    return 2;
  }
  try {
    const code = await (await load())(rest);
    return typeof code === 'number' ? code : 0;
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`error: ${err.message}`);
      return 2;
    }
    const msg = err instanceof EngineError || err instanceof Error ? err.message : String(err);
    console.error(`error: ${msg.split('\n')[0]}`);
    if (process.env.STYLECLIP_DEBUG && err instanceof Error) console.error(err.stack);
    return 1;
  }
}
