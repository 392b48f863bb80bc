// The HTTP server every process part runs: /healthz and /metrics, plus the playground's routes when it is on.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { sendJson, type RouteHandler } from '../http.ts';

export interface OpsServerOptions {
  host: string;
  port: number;
  /** null while starting (503), else the JSON body: a 200, or a 503 when it says `ok: false` (e.g. Redis down). */
  health: () => Promise<Record<string, unknown> | null>;
  metrics: () => Promise<{ contentType: string; text: string }>;
  /** Extra routes (the playground); returns true when it answered. */
  routes?: RouteHandler;
}

export interface OpsServer {
  url: string;
  close(): Promise<void>;
}

export async function startOpsServer(o: OpsServerOptions): Promise<OpsServer> {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    try {
      if (req.method === 'GET' && url.pathname === '/healthz') {
        const health = await o.health().catch(() => null);
        return sendJson(res, health && health.ok !== false ? 200 : 503, health ?? { ok: false, status: 'starting' });
      }
      if (req.method === 'GET' && url.pathname === '/metrics') {
        const m = await o.metrics();
        res.writeHead(200, { 'content-type': m.contentType });
        return res.end(m.text);
      }
      if (o.routes && (await o.routes(req, res, url))) return;
      sendJson(res, 404, { error: `no route ${req.method} ${url.pathname}` });
    } catch (err) {
      if (!res.headersSent) sendJson(res, 400, { error: (err as Error).message });
      else res.end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
