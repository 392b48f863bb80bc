import { parseFlags } from '../args.ts';
import { checkOutputs, checkSource, openFromArgs, PACK_FLAGS, SOURCE_FLAGS, sourceStates, writeOutputs } from '../common.ts';

export const usage = `usage: styleclip generate --pack DIR (--seed N[,N…] [--truncation ψ] | --latent F.npy) --out OUT [--save-latent F.npy] [--device cpu|cuda]

Renders images. --seed N draws z = numpy RandomState(N).randn(zDim); --truncation ψ (default 1)
pulls w toward the pack's w_avg. --latent reads float32 .npy [wDim], [numWs, wDim] or [N, numWs, wDim].
--out by extension: .png, .webp, .jpg, or .npy (raw float32 [N, 3, H, W]); N > 1 gives a strip.`;

export async function run(argv: string[]): Promise<number> {
  const args = parseFlags(argv, { ...PACK_FLAGS, ...SOURCE_FLAGS }, 'generate');
  if (args.help) {
    console.log(usage);
    return 0;
  }
  checkSource(args, 'generate');
  await checkOutputs(args, 'generate');
  const engine = await openFromArgs(args, 'generate');
  try {
    const states = await sourceStates(engine, args);
    const images = await engine.render(states);
    for (const line of await writeOutputs(engine, args, states, images)) console.log(line);
    return 0;
  } finally {
    await engine.close();
  }
}
