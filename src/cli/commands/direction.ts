import { writeNpy } from '../../engine/npy.ts';
import { checkWritable } from '../../engine/index.ts';
import { parseFlags, requireStr, str } from '../args.ts';
import { UsageError } from '../../errors.ts';
import { openFromArgs, PACK_FLAGS } from '../common.ts';
import { promptFlag, TEXT_FLAGS, thresholdFlag } from './edit.ts';

export const usage = `usage: styleclip direction --pack DIR --prompt TEXT [--neutral TEXT] [--threshold β|auto] --out F.npy [--device cpu|cuda]

Writes the global direction ΔS (float32 [S], all style channels in layout order, toRGB 0, before α)
and prints "channels: N", the number of style channels it moves.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseFlags(argv, { ...PACK_FLAGS, ...TEXT_FLAGS, out: 'string' }, 'direction');
  if (args.help) {
    console.log(usage);
    return 0;
  }
  const prompt = promptFlag(args, 'direction');
  const threshold = thresholdFlag(args);
  const out = requireStr(args, 'out', 'direction');
  if (!out.toLowerCase().endsWith('.npy')) throw new UsageError(`direction --out must name a .npy file, got ${out}`);
  await checkWritable(out);
  requireStr(args, 'pack', 'direction');
  const engine = await openFromArgs(args, 'direction');
  try {
    const d = await engine.direction(prompt, str(args, 'neutral'), threshold);
    await writeNpy(out, [d.delta.length], d.delta);
    console.log(`target: ${d.target}`);
    console.log(`neutral: ${d.neutral}`);
    console.log(`threshold: ${d.threshold}`);
    console.log(`channels: ${d.channels}`);
    console.log(`wrote ${out}`);
    return 0;
  } finally {
    await engine.close();
  }
}
