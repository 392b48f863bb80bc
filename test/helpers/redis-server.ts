// A throwaway redis-server of a test's own (on a spare port from 6390 up, never the shared one on 6379),
// for tests that stop or restart Redis.
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';

/** A spare port from `start` up. */
export async function freePort(start: number): Promise<number> {
  for (let port = start; port < start + 100; port++) {
    const free = await new Promise<boolean>((resolve) => {
      const probe = net.createServer().once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
    });
    if (free) return port;
  }
  throw new Error('no free port for a test redis-server');
}

/** Starts redis-server on `port` (extra `args` appended) and resolves once it answers PING. */
export async function startRedisServer(port: number, args: string[] = []): Promise<ChildProcess> {
  const server = spawn('redis-server', ['--port', String(port), '--save', '', ...args], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      const ping = spawn('redis-cli', ['-p', String(port), 'ping'], { stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      ping.stdout.on('data', (d) => (out += d));
      ping.on('exit', () => resolve(out.includes('PONG')));
    });
    if (ok) return server;
    await new Promise((r) => setTimeout(r, 50));
  }
  server.kill('SIGKILL');
  throw new Error('redis-server did not start');
}

/** Kills it and waits until it is gone. */
export async function killRedisServer(server: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return;
  const gone = new Promise((resolve) => server.once('exit', resolve));
  server.kill(signal);
  await gone;
}
