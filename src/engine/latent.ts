// Latent files: float32 .npy of W [wDim], W+ [numWs, wDim] or a batch [N, numWs, wDim].
// A global edit lives in S, not W+, so `saveLatents` writes its ΔS beside the W+ file
// (F.sdelta.npy, [N, S]) and `loadLatents` picks it up again: chained edits survive a round trip.
import { access, rm } from 'node:fs/promises';
import { readNpy, writeNpy } from './npy.ts';
import { EngineError, type LatentState } from './types.ts';

export interface LatentShape {
  numWs: number;
  wDim: number;
  styleChannels: number;
}

/** Path of the ΔS sidecar of a latent file. */
export function deltaPath(path: string): string {
  return path.replace(/(\.npy)?$/i, '.sdelta.npy');
}

/** States from a latent array of shape [wDim], [numWs, wDim] or [N, numWs, wDim]. */
export function statesFromArray(shape: readonly number[], data: Float32Array, dims: LatentShape, label: string): LatentState[] {
  const { numWs, wDim } = dims;
  const row = numWs * wDim;
  const bad = () =>
    new EngineError(
      'bad_latent_shape',
      `${label} has shape [${shape.join(', ')}]; expected [${wDim}] (one W), [${numWs}, ${wDim}] (one W+) or [N, ${numWs}, ${wDim}]`,
    );
  if (shape.length === 1 && shape[0] === wDim) {
    const wplus = new Float32Array(row);
    for (let i = 0; i < numWs; i++) wplus.set(data, i * wDim);
    return [{ wplus }];
  }
  if (shape.length === 2 && shape[0] === numWs && shape[1] === wDim) return [{ wplus: data.slice() }];
  if (shape.length === 3 && shape[0] > 0 && shape[1] === numWs && shape[2] === wDim) {
    return Array.from({ length: shape[0] }, (_, i) => ({ wplus: data.slice(i * row, (i + 1) * row) }));
  }
  throw bad();
}

export async function loadLatents(path: string, dims: LatentShape): Promise<LatentState[]> {
  const { shape, data } = await readNpy(path);
  if (data.some((x) => !Number.isFinite(x))) throw new EngineError('bad_latent', `${path} contains NaN or infinite values`);
  const states = statesFromArray(shape, data, dims, path);
  const side = deltaPath(path);
  if (await access(side).then(() => true, () => false)) {
    const delta = await readNpy(side);
    const S = dims.styleChannels;
    if (delta.shape.length !== 2 || delta.shape[0] !== states.length || delta.shape[1] !== S) {
      throw new EngineError('bad_latent_shape', `${side} has shape [${delta.shape.join(', ')}]; expected [${states.length}, ${S}] to match ${path}`);
    }
    states.forEach((s, i) => (s.styleDelta = delta.data.slice(i * S, (i + 1) * S)));
  }
  return states;
}

/** Writes W+ as [N, numWs, wDim], plus the ΔS sidecar when any state carries one. */
export async function saveLatents(path: string, states: readonly LatentState[], dims: LatentShape): Promise<string[]> {
  const row = dims.numWs * dims.wDim;
  const all = new Float32Array(states.length * row);
  states.forEach((s, i) => all.set(s.wplus, i * row));
  await writeNpy(path, [states.length, dims.numWs, dims.wDim], all);
  const written = [path];
  if (states.some((s) => s.styleDelta)) {
    const S = dims.styleChannels;
    const deltas = new Float32Array(states.length * S);
    states.forEach((s, i) => s.styleDelta && deltas.set(s.styleDelta, i * S));
    await writeNpy(deltaPath(path), [states.length, S], deltas);
    written.push(deltaPath(path));
  } else {
    await rm(deltaPath(path), { force: true }); // a stale sidecar would be picked up on load
  }
  return written;
}
