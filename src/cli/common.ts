// What several commands share: opening the pack, where the latents come from, writing outputs.
import { checkWritable, loadLatents, openPack, outputFormat, saveLatents, type StyleClipEngine } from '../engine/index.ts';
import type { LatentState, RenderedImage } from '../engine/types.ts';
import { writeImages } from '../engine/image.ts';
import { asUsage, num, requireStr, seeds, str, type ParsedArgs } from './args.ts';
import { UsageError } from '../errors.ts';

export const PACK_FLAGS = { pack: 'string', device: 'string' } as const;
export const SOURCE_FLAGS = { seed: 'string', truncation: 'string', latent: 'string', out: 'string', 'save-latent': 'string' } as const;

export function openFromArgs(args: ParsedArgs, command: string): Promise<StyleClipEngine> {
  return openPack(requireStr(args, 'pack', command), { device: str(args, 'device') });
}

/** Validates --out / --save-latent before any model runs. */
export async function checkOutputs(args: ParsedArgs, command: string): Promise<void> {
  const out = requireStr(args, 'out', command);
  asUsage(() => outputFormat(out));
  await checkWritable(out);
  const save = str(args, 'save-latent');
  if (save !== undefined) {
    if (!save.toLowerCase().endsWith('.npy')) throw new UsageError(`--save-latent must name a .npy file, got ${save}`);
    await checkWritable(save);
  }
}

/** The flags of "(--seed N [--truncation ψ] | --latent F.npy)", checked without the pack. */
export function checkSource(args: ParsedArgs, command: string): void {
  const hasSeed = str(args, 'seed') !== undefined;
  const hasLatent = str(args, 'latent') !== undefined;
  // --image PHOTO is a third start where the command takes it (edit).
  const hasImage = str(args, 'image') !== undefined;
  if (Number(hasSeed) + Number(hasLatent) + Number(hasImage) !== 1) {
    throw new UsageError(`${command} needs exactly one of --seed N or --latent F.npy${command === 'edit' ? ' or --image PHOTO' : ''}`);
  }
  if (!hasSeed && str(args, 'truncation') !== undefined) throw new UsageError('--truncation applies to --seed only');
  seeds(args);
  num(args, 'truncation');
}

export async function sourceStates(engine: StyleClipEngine, args: ParsedArgs): Promise<LatentState[]> {
  const list = seeds(args);
  if (list) return engine.sample(list, num(args, 'truncation') ?? 1);
  const s = engine.summary;
  return loadLatents(str(args, 'latent')!, { numWs: s.numWs, wDim: s.wDim, styleChannels: s.styleChannels });
}

/** Writes --out (and --save-latent); returns the lines to print. */
export async function writeOutputs(engine: StyleClipEngine, args: ParsedArgs, states: LatentState[], images: RenderedImage[]): Promise<string[]> {
  const out = str(args, 'out')!;
  await writeImages(out, images.map((i) => i.raw), engine.summary.resolution);
  const lines = [`wrote ${out}`];
  const save = str(args, 'save-latent');
  if (save !== undefined) {
    const s = engine.summary;
    const written = await saveLatents(save, states, { numWs: s.numWs, wDim: s.wDim, styleChannels: s.styleChannels });
    lines.push(...written.map((p) => `wrote ${p}`));
  }
  return lines;
}
