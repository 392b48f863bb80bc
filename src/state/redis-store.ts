// The store on Redis (REDIS_URL): shared by every bot and worker process, and it survives restarts.
import { Redis } from 'ioredis';
import type { Store } from './store.ts';

export class RedisStore implements Store {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  static connect(url: string, prefix: string): RedisStore {
    // Fail fast while Redis is down instead of queueing commands in memory: callers tell the user.
    // Reconnect attempts at most every 500 ms (ioredis: 2 s), so a restarted Redis is taken up again at once.
    const redis = new Redis(url, {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      lazyConnect: false,
      retryStrategy: (times) => Math.min(times * 50, 500),
    });
    redis.on('error', () => {}); // reconnects on its own; failures surface on the next command
    return new RedisStore(redis, prefix);
  }

  /** The client, for connection events (RedisHealth.watch). */
  get connection(): Redis {
    return this.redis;
  }

  private k(key: string) {
    return `${this.prefix}${key}`;
  }
  async get(key: string) {
    return this.redis.getBuffer(this.k(key));
  }
  async set(key: string, value: Buffer | string, ttlS?: number) {
    if (ttlS) await this.redis.set(this.k(key), value, 'EX', ttlS);
    else await this.redis.set(this.k(key), value);
  }
  async setNX(key: string, value: Buffer | string, ttlS: number) {
    return (await this.redis.set(this.k(key), value, 'EX', ttlS, 'NX')) === 'OK';
  }
  async del(...keys: string[]) {
    if (keys.length) await this.redis.del(...keys.map((k) => this.k(k)));
  }
  async push(key: string, value: string, max: number, ttlS?: number) {
    const tx = this.redis.multi().lpush(this.k(key), value).ltrim(this.k(key), 0, max - 1);
    if (ttlS) tx.expire(this.k(key), ttlS);
    await tx.exec();
  }
  async list(key: string, count: number) {
    return this.redis.lrange(this.k(key), 0, count - 1);
  }
  async ready() {
    if (this.redis.status === 'ready') return;
    await new Promise<void>((resolve) => this.redis.once('ready', () => resolve()));
  }
  async close() {
    this.redis.disconnect();
  }
}
