// Whether Redis is reachable now, as one process sees it through its store's connection. An outage is logged
// once when it starts and once when it ends (not once per failed call) and counted; `rideOut` retries a Redis
// call through a short outage instead of failing the work around it.
import type { Logger } from '../log.ts';
import type { Metrics } from '../metrics.ts';
import { isRedisDown } from './store.ts';

/** What RedisHealth listens to: an ioredis client ('ready' once connected, 'close' when the connection drops). */
export interface ConnectionEvents {
  on(event: 'ready' | 'close', listener: () => void): unknown;
}

export class RedisHealth {
  private connected = false;
  private downSince: number | null = null;
  private readonly listeners = new Set<(up: boolean) => void>();

  constructor(
    private readonly o: { log: Logger; metrics: Metrics; /** REDIS_OUTAGE_MS, for the log line */ boundMs: number },
  ) {}

  watch(connection: ConnectionEvents): this {
    connection.on('ready', () => this.markUp());
    connection.on('close', () => this.markDown());
    return this;
  }

  /** Called when an outage starts (false) and when it ends (true). */
  onChange(listener: (up: boolean) => void): void {
    this.listeners.add(listener);
  }

  /** Reachable now (false before the first connection too). */
  get up(): boolean {
    return this.connected;
  }

  /** How long the current outage has lasted (0 while up). */
  downForMs(): number {
    return this.downSince === null ? 0 : Date.now() - this.downSince;
  }

  private markUp() {
    const was = this.downSince;
    this.connected = true;
    this.downSince = null;
    this.o.metrics.redisUp.set(1);
    if (was === null) return;
    this.o.log.info({ downMs: Date.now() - was }, 'Redis is back');
    for (const listener of this.listeners) listener(true);
  }

  private markDown() {
    if (!this.connected) return; // a failed reconnect attempt of the same outage, or not connected yet
    this.connected = false;
    this.downSince = Date.now();
    this.o.metrics.redisUp.set(0);
    this.o.metrics.redisOutages.inc();
    this.o.log.warn({ rideOutMs: this.o.boundMs }, 'Redis is down');
    for (const listener of this.listeners) listener(false);
  }
}

/** Thrown by rideOut when Redis stays away longer than the bound. */
export class RedisOutageTooLong extends Error {
  constructor(boundMs: number, cause: unknown) {
    super(`Redis unreachable for over ${Math.round(boundMs / 1000)} s (${(cause as Error)?.message ?? cause})`);
    this.name = 'RedisOutageTooLong';
  }
}

/**
 * Runs `op`, retrying it while Redis is unreachable (every 100 ms at first, then up to every 2 s) until
 * `boundMs` after its first failure; past that it throws RedisOutageTooLong. Other errors pass through at
 * once. `onOutage` is called the first time `op` meets an outage. For idempotent calls only (get, set, del).
 */
export async function rideOut<T>(op: () => Promise<T>, boundMs: number, onOutage?: () => void): Promise<T> {
  let since: number | null = null;
  for (let attempt = 0; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (!isRedisDown(err)) throw err;
      if (since === null) {
        since = Date.now();
        onOutage?.();
      }
      if (Date.now() - since >= boundMs) throw new RedisOutageTooLong(boundMs, err);
      await new Promise((r) => setTimeout(r, Math.min(100 * 2 ** attempt, 2000, Math.max(0, since! + boundMs - Date.now()))));
    }
  }
}
