import type { EditSpec, Method } from '../../engine/types.ts';
import { validateStrength } from '../../engine/index.ts';
import { asUsage, num, parseFlags, requireStr, str, type ParsedArgs } from '../args.ts';
import { UsageError } from '../../errors.ts';
import { checkOutputs, checkSource, openFromArgs, PACK_FLAGS, SOURCE_FLAGS, sourceStates, writeOutputs } from '../common.ts';
import { invertFromArgs, writeImageFile } from './invert.ts';
import { encodeRgb, type InvertedPhoto, type PhotoPipeline } from '../../engine/photo/pipeline.ts';
import { outputFormat } from '../../engine/image.ts';
import { saveLatents } from '../../engine/latent.ts';

export const usage = `usage: styleclip edit --pack DIR --prompt TEXT [--neutral TEXT] [--method global|mapper] [--mapper NAME]
                      [--strength α] [--threshold β|auto] (--seed N[,N…] [--truncation ψ] | --latent F.npy | --image PHOTO)
                      --out OUT [--paste-back] [--save-latent F.npy] [--device cpu|cuda]

Edits images from text. global (default): s' = s + α·ΔS with the pack's neutral rule ("curly hair"
→ "face with curly hair" vs "face"; --neutral uses both texts verbatim); α defaults to the pack's
strength, β to the pack's threshold (automatic when unset). mapper (or --mapper NAME): ŵ = w + α·0.1·M(w),
α defaults to 1. α may be negative (away from the text), |α| ≤ 50. See docs/engine.md.
--image PHOTO starts from a photo: its largest face is aligned and inverted with the pack's encoder
(as styleclip invert); --out is then the edited aligned face, or with --paste-back the whole photo
with the edited face blended back in (pixels outside the face mask unchanged). See docs/photos.md.`;

export const TEXT_FLAGS = { prompt: 'string', neutral: 'string', threshold: 'string' } as const;

/** --threshold: a number in [0, 1] or "auto". */
export function thresholdFlag(args: ParsedArgs): number | 'auto' | undefined {
  const v = str(args, 'threshold');
  if (v === undefined) return undefined;
  if (v.trim().toLowerCase() === 'auto') return 'auto';
  const n = num(args, 'threshold')!;
  if (n < 0 || n > 1) throw new UsageError(`--threshold β must be in [0, 1] (typical 0.10–0.30) or auto, got ${v}`);
  return n;
}

/** --prompt, checked for emptiness before any model loads. */
export function promptFlag(args: ParsedArgs, command: string): string {
  const prompt = str(args, 'prompt');
  if (prompt === undefined) throw new UsageError(`${command} needs --prompt TEXT; see styleclip ${command} --help`);
  if (prompt.trim() === '') throw new UsageError('--prompt is empty: describe the edit, e.g. --prompt "curly hair"');
  return prompt;
}

export async function run(argv: string[]): Promise<number> {
  const args = parseFlags(argv, { ...PACK_FLAGS, ...SOURCE_FLAGS, ...TEXT_FLAGS, method: 'string', mapper: 'string', strength: 'string', image: 'string', 'paste-back': 'boolean' }, 'edit');
  if (args.help) {
    console.log(usage);
    return 0;
  }
  const prompt = promptFlag(args, 'edit');
  const methodText = str(args, 'method') ?? (str(args, 'mapper') !== undefined ? 'mapper' : 'global');
  if (methodText !== 'global' && methodText !== 'mapper') throw new UsageError(`--method must be global or mapper, got "${methodText}"`);
  const method: Method = methodText;
  if (method === 'global' && str(args, 'mapper') !== undefined) throw new UsageError('--mapper needs --method mapper');
  const threshold = thresholdFlag(args);
  if (method === 'mapper' && (threshold !== undefined || str(args, 'neutral') !== undefined)) {
    throw new UsageError('--threshold and --neutral apply to the global method only');
  }
  const strengthFlag = num(args, 'strength');
  if (strengthFlag !== undefined) asUsage(() => validateStrength(strengthFlag));
  checkSource(args, 'edit');
  const image = str(args, 'image');
  const pasteBack = args.flags['paste-back'] === true;
  if (pasteBack && image === undefined) throw new UsageError('--paste-back needs --image PHOTO');
  if (pasteBack && outputFormat(requireStr(args, 'out', 'edit')) === 'npy') throw new UsageError('--paste-back writes the photo: --out must be .png, .webp or .jpg');
  await checkOutputs(args, 'edit');
  requireStr(args, 'pack', 'edit');

  const engine = await openFromArgs(args, 'edit');
  let photo: { pipeline: PhotoPipeline; inverted: InvertedPhoto } | undefined;
  try {
    const strength = strengthFlag ?? (method === 'global' ? engine.summary.defaults.strength : 1);
    if (image !== undefined) photo = await invertFromArgs(engine, image, engine.device);
    const states = photo ? [photo.inverted.state] : await sourceStates(engine, args);
    const spec: EditSpec = { method, prompt, neutral: str(args, 'neutral'), mapper: str(args, 'mapper'), strength, threshold };
    const edited = await engine.edit(states, states.map(() => spec));
    const info = edited[0].info;
    console.log(
      info.method === 'global'
        ? `global: target "${info.target}", neutral "${info.neutral}", strength ${info.strength}, threshold ${info.threshold}, channels: ${info.channels}`
        : `mapper: ${info.mapper}, strength ${info.strength}`,
    );
    const outStates = edited.map((e) => e.state);
    const images = await engine.render(outStates);
    if (photo && pasteBack) {
      const { inverted, pipeline } = photo;
      const { pasted } = await pipeline.finish(inverted.photo, inverted.inversion.transform, images[0], inverted.aligned);
      const out = str(args, 'out')!;
      await writeImageFile(out, await encodeRgb(pasted, outputFormat(out) as 'png' | 'webp' | 'jpeg'));
      console.log(`pasted back: region ${pasted.region.x},${pasted.region.y},${pasted.region.width},${pasted.region.height}`);
      console.log(`wrote ${out}`);
      const save = str(args, 'save-latent');
      if (save !== undefined) {
        const s = engine.summary;
        for (const p of await saveLatents(save, outStates, { numWs: s.numWs, wDim: s.wDim, styleChannels: s.styleChannels })) console.log(`wrote ${p}`);
      }
    } else {
      for (const line of await writeOutputs(engine, args, outStates, images)) console.log(line);
    }
    return 0;
  } finally {
    await photo?.pipeline.close();
    await engine.close();
  }
}
