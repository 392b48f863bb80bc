// Worker-thread side of ThreadExecutor: owns the engine so model calls never block the caller's event loop.
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { createEngineExecutor, type ExecItem, type OpenPack } from './executor.ts';

interface ThreadData {
  engineModule: string;
  device?: string;
}
type Request = { id: number; kind: 'run'; items: ExecItem[] } | { id: number; kind: 'warm'; packDir: string } | { id: number; kind: 'close' };

const { engineModule, device } = workerData as ThreadData;
const { openPack } = (await import(pathToFileURL(engineModule).href)) as { openPack: OpenPack };
const executor = createEngineExecutor(openPack, device);
const port = parentPort!;

port.on('message', async (req: Request) => {
  try {
    if (req.kind === 'run') {
      const outcomes = await executor.run(req.items);
      const transfer: ArrayBuffer[] = [];
      for (const o of outcomes) if (o.ok) transfer.push(o.png.buffer as ArrayBuffer);
      port.postMessage({ id: req.id, ok: true, value: outcomes }, transfer);
    } else if (req.kind === 'warm') {
      await executor.warm(req.packDir);
      port.postMessage({ id: req.id, ok: true });
    } else {
      await executor.close();
      port.postMessage({ id: req.id, ok: true });
    }
  } catch (err) {
    const e = err as Error;
    port.postMessage({ id: req.id, ok: false, error: { name: e.name, message: e.message, code: (e as { code?: string }).code } });
  }
});
port.postMessage({ ready: true });
