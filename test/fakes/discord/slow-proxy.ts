// A TCP proxy that can hold back traffic (a slow Redis, seen from the bot), switchable at run time.
import { createServer, connect, type Server, type Socket } from 'node:net';
import { listenLocal } from './fake-discord.ts';

export class SlowProxy {
  /** Delay added to every chunk, both ways. */
  delayMs = 0;
  port = 0;
  private server: Server;
  private sockets = new Set<Socket>();

  constructor(private readonly target: { host: string; port: number }) {
    this.server = createServer((client) => {
      const upstream = connect(target.port, target.host);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => { client.destroy(); upstream.destroy(); });
      }
      this.pipe(client, upstream);
      this.pipe(upstream, client);
    });
  }

  /** Adds latency, not serial waits: each chunk leaves `delayMs` after it arrived, in order. */
  private pipe(from: Socket, to: Socket): void {
    let chain = Promise.resolve();
    from.on('data', (chunk) => {
      const at = Date.now() + this.delayMs;
      chain = chain
        .then(() => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now()))))
        .then(() => { if (!to.destroyed) to.write(chunk); });
    });
  }

  get url(): string { return `redis://127.0.0.1:${this.port}`; }

  async start(): Promise<this> {
    this.port = await listenLocal(this.server);
    return this;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
