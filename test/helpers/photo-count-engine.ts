// The real engine, with every encoder call appended to the file named by PHOTO_ENCODE_LOG (one line per
// call: the batch size and the thread it ran on): the worker thread's encoder use, seen from the test process.
import { appendFileSync } from 'node:fs';
import { isMainThread } from 'node:worker_threads';
import { openPack as openRealPack, type OpenOptions } from '../../src/engine/index.ts';

export async function openPack(dir: string, opts: OpenOptions) {
  const engine = await openRealPack(dir, opts);
  const encode = engine.encode.bind(engine);
  engine.encode = async (images: Float32Array, n: number) => {
    if (process.env.PHOTO_ENCODE_LOG) appendFileSync(process.env.PHOTO_ENCODE_LOG, `${n} ${isMainThread ? 'main' : 'worker'}\n`);
    return encode(images, n);
  };
  return engine;
}
