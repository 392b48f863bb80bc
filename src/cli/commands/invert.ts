import { readFile, writeFile } from 'node:fs/promises';
import { checkWritable, outputFormat, saveLatents, type StyleClipEngine } from '../../engine/index.ts';
import { describeFace, describeFaceCount, encodeRgb, PhotoPipeline, type InvertedPhoto } from '../../engine/photo/pipeline.ts';
import { EngineError } from '../../engine/types.ts';
import { asUsage, parseFlags, requireStr, str } from '../args.ts';
import { UsageError } from '../../errors.ts';
import { openFromArgs, PACK_FLAGS } from '../common.ts';

export const usage = `usage: styleclip invert --pack DIR --image PHOTO --out W.npy [--aligned CROP.png] [--device cpu|cuda]

Finds the largest face in PHOTO (BlazeFace), aligns it the FFHQ way to the encoder's input size and
encodes it with the pack's e4e encoder. Writes W+ as float32 [1, numWs, wDim] to --out (edit it with
styleclip edit --latent W.npy, or edit the photo directly with styleclip edit --image PHOTO).
Prints "face: score S box x,y,w,h". --aligned writes the aligned crop the encoder saw. See docs/photos.md.`;

/** Reads the photo file; a missing or unreadable file is one line. */
export async function readPhoto(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new EngineError('missing_file', `cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (code ?? String(err))}`);
  }
}

/** Inverts --image with the engine's photo pipeline; prints what it found. */
export async function invertFromArgs(engine: StyleClipEngine, image: string, device: string): Promise<{ pipeline: PhotoPipeline; inverted: InvertedPhoto }> {
  const pipeline = new PhotoPipeline(engine, { device: device === 'cuda' ? 'cuda' : 'cpu' });
  try {
    pipeline.encoderSize(); // a pack without an encoder fails before the photo is read
    const inverted = await pipeline.invert(await readPhoto(image));
    const { face, firstFrameOnly } = inverted.inversion;
    if (firstFrameOnly) console.log('animated or multi-page image: using its first frame');
    const several = describeFaceCount(face);
    if (several) console.log(several);
    console.log(describeFace(face));
    return { pipeline, inverted };
  } catch (err) {
    await pipeline.close();
    throw err;
  }
}

export async function run(argv: string[]): Promise<number> {
  const args = parseFlags(argv, { ...PACK_FLAGS, image: 'string', out: 'string', aligned: 'string' }, 'invert');
  if (args.help) {
    console.log(usage);
    return 0;
  }
  requireStr(args, 'pack', 'invert');
  const image = requireStr(args, 'image', 'invert');
  const out = requireStr(args, 'out', 'invert');
  if (asUsage(() => outputFormat(out)) !== 'npy') throw new UsageError(`--out must name a .npy file (W+ [1, numWs, wDim]), got ${out}`);
  await checkWritable(out);
  const aligned = str(args, 'aligned');
  if (aligned !== undefined) {
    if (asUsage(() => outputFormat(aligned)) === 'npy') throw new UsageError(`--aligned writes an image: use .png, .webp or .jpg, got ${aligned}`);
    await checkWritable(aligned);
  }
  const engine = await openFromArgs(args, 'invert');
  try {
    const { pipeline, inverted } = await invertFromArgs(engine, image, engine.device);
    await pipeline.close();
    const s = engine.summary;
    for (const p of await saveLatents(out, [inverted.state], { numWs: s.numWs, wDim: s.wDim, styleChannels: s.styleChannels })) console.log(`wrote ${p}`);
    if (aligned !== undefined) {
      const format = outputFormat(aligned) as 'png' | 'webp' | 'jpeg';
      await writeImageFile(aligned, await encodeRgb(inverted.aligned, format));
      console.log(`wrote ${aligned}`);
    }
    return 0;
  } finally {
    await engine.close();
  }
}

export async function writeImageFile(path: string, bytes: Buffer): Promise<void> {
  try {
    await writeFile(path, bytes);
  } catch (err) {
    throw new EngineError('unwritable_output', `cannot write ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}
