// onnxruntime-node sessions: CPU by default (intra-op threads = available cores, all graph
// optimisations), the CUDA execution provider when asked. Native logs are silenced so errors
// reach the user as one line.
import { availableParallelism } from 'node:os';
import { basename } from 'node:path';
import ort from 'onnxruntime-node';
import { EngineError } from './types.ts';

export type Device = 'cpu' | 'cuda';

ort.env.logLevel = 'fatal';

/** `--device` value or STYLECLIP_DEVICE, validated. */
export function resolveDevice(device?: string): Device {
  const d = (device || process.env.STYLECLIP_DEVICE || 'cpu').toLowerCase();
  if (d !== 'cpu' && d !== 'cuda') throw new EngineError('bad_device', `unknown device "${d}"; use cpu or cuda`);
  return d;
}

export interface SessionOptions {
  device: Device;
  /** Intra-op threads on CPU; default: available cores. */
  threads?: number;
}

export async function createSession(path: string, opts: SessionOptions): Promise<ort.InferenceSession> {
  const options: ort.InferenceSession.SessionOptions = {
    executionProviders: [opts.device],
    graphOptimizationLevel: 'all',
    intraOpNumThreads: opts.threads ?? availableParallelism(),
    logSeverityLevel: 4,
  };
  try {
    return await ort.InferenceSession.create(path, options);
  } catch (err) {
    const msg = String((err as Error).message ?? err).split('\n')[0];
    if (opts.device === 'cuda' && /cuda|shared library|provider/i.test(msg)) {
      throw new EngineError(
        'cuda_unavailable',
        `the CUDA execution provider is not installed in onnxruntime-node (${msg}); install it with ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node (needs CUDA 12 and cuDNN 9), or use --device cpu`,
      );
    }
    if (/no such file|ENOENT|doesn't exist|does not exist/i.test(msg)) throw new EngineError('missing_file', `missing model file ${path}`);
    throw new EngineError('corrupt_model', `cannot load ${basename(path)} (${path}): ${msg}; rebuild the pack with the toolkit`);
  }
}

/** Creates a session on first use and reuses it (one load per graph per engine). */
export class LazySession {
  private promise: Promise<ort.InferenceSession> | null = null;
  constructor(
    readonly path: string,
    private readonly opts: SessionOptions,
  ) {}

  get(): Promise<ort.InferenceSession> {
    if (!this.promise) {
      this.promise = createSession(this.path, this.opts);
      // A failed load may be retried later (e.g. after the file is fixed).
      this.promise.catch(() => {
        this.promise = null;
      });
    }
    return this.promise;
  }

  async run(feeds: Record<string, ort.Tensor>): Promise<ort.InferenceSession.ReturnType> {
    const session = await this.get();
    return session.run(feeds);
  }

  async release(): Promise<void> {
    if (!this.promise) return;
    const p = this.promise;
    this.promise = null;
    try {
      await (await p).release();
    } catch {
      // never loaded: nothing to release
    }
  }
}

export { ort };
