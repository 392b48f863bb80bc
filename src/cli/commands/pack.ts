import { checkPack } from '../../engine/check.ts';
import { parseFlags } from '../args.ts';
import { UsageError } from '../../errors.ts';

export const usage = `usage: styleclip pack check DIR

Validates a model pack against models/README.md: pack.json, the style layout, required files,
tensor shapes (w_avg, fs3 rows = conv channels, std) and each ONNX graph's inputs and outputs.
Prints every problem found; exit code 1 when there is any.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseFlags(argv, {}, 'pack', true);
  if (args.help) {
    console.log(usage);
    return 0;
  }
  const [sub, dir, ...rest] = args.positionals;
  if (sub !== 'check') throw new UsageError(`unknown pack subcommand ${sub ? `"${sub}"` : '(none)'}; use: styleclip pack check DIR`);
  if (!dir || rest.length > 0) throw new UsageError('usage: styleclip pack check DIR');
  const { problems, summary } = await checkPack(dir);
  if (problems.length === 0) {
    console.log(`ok ${summary}`);
    return 0;
  }
  for (const p of problems) console.error(`problem: ${p}`);
  console.error(`error: pack ${dir} has ${problems.length} problem${problems.length === 1 ? '' : 's'}`);
  return 1;
}
