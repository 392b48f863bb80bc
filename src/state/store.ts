// Key-value state shared by bot and worker: results, job records, settings, message links, dedupe marks.
// Redis when REDIS_URL is set (redis-store.ts: survives restarts, shared by all processes), memory otherwise.

export interface Store {
  get(key: string): Promise<Buffer | null>;
  set(key: string, value: Buffer | string, ttlS?: number): Promise<void>;
  /** Sets only when absent; true when this call set it (idempotency and claims). */
  setNX(key: string, value: Buffer | string, ttlS: number): Promise<boolean>;
  del(...keys: string[]): Promise<void>;
  /** Prepends to a list kept to `max` entries (newest first); `ttlS` renews the whole list's expiry. */
  push(key: string, value: string, max: number, ttlS?: number): Promise<void>;
  list(key: string, count: number): Promise<string[]>;
  /** Resolves once the store takes commands (Redis: connected; commands made before would fail fast). */
  ready(): Promise<void>;
  close(): Promise<void>;
}

export async function getJSON<T>(store: Store, key: string): Promise<T | null> {
  const raw = await store.get(key);
  return raw ? (JSON.parse(raw.toString('utf8')) as T) : null;
}

export function setJSON(store: Store, key: string, value: unknown, ttlS?: number): Promise<void> {
  return store.set(key, JSON.stringify(value), ttlS);
}

/**
 * The embedded mode's store. Expired keys are swept every minute, and when values with a TTL (results
 * and the like) pass `maxBytes`, the oldest go first; keys without a TTL (settings) are never evicted.
 */
export class MemoryStore implements Store {
  private readonly values = new Map<string, { value: Buffer; expires: number }>();
  private readonly lists = new Map<string, { items: string[]; expires: number }>();
  private bytes = 0;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly maxBytes = 512 * 1024 * 1024) {
    this.sweeper = setInterval(() => this.sweep(), 60_000);
    this.sweeper.unref();
  }

  private sweep() {
    const now = Date.now();
    for (const [key, entry] of this.values) if (entry.expires <= now) this.remove(key);
    for (const [key, entry] of this.lists) if (entry.expires <= now) this.lists.delete(key);
  }

  private remove(key: string) {
    const entry = this.values.get(key);
    if (!entry) return;
    this.bytes -= entry.value.length;
    this.values.delete(key);
  }

  private live(key: string) {
    const entry = this.values.get(key);
    if (entry && entry.expires <= Date.now()) {
      this.remove(key);
      return undefined;
    }
    return entry;
  }

  async get(key: string) {
    return this.live(key)?.value ?? null;
  }
  async set(key: string, value: Buffer | string, ttlS?: number) {
    const buf = Buffer.isBuffer(value) ? value : Buffer.from(value);
    this.remove(key); // re-inserted at the end: Map order is age order
    this.values.set(key, { value: buf, expires: ttlS ? Date.now() + ttlS * 1000 : Infinity });
    this.bytes += buf.length;
    for (const [old, entry] of this.values) {
      if (this.bytes <= this.maxBytes) break;
      if (entry.expires !== Infinity && old !== key) this.remove(old);
    }
  }
  async setNX(key: string, value: Buffer | string, ttlS: number) {
    if (this.live(key)) return false;
    await this.set(key, value, ttlS);
    return true;
  }
  async del(...keys: string[]) {
    for (const key of keys) this.remove(key);
  }
  async push(key: string, value: string, max: number, ttlS?: number) {
    const list = this.liveList(key) ?? [];
    list.unshift(value);
    this.lists.set(key, { items: list.slice(0, max), expires: ttlS ? Date.now() + ttlS * 1000 : Infinity });
  }
  async list(key: string, count: number) {
    return (this.liveList(key) ?? []).slice(0, count);
  }
  private liveList(key: string) {
    const entry = this.lists.get(key);
    if (entry && entry.expires <= Date.now()) this.lists.delete(key);
    return this.lists.get(key)?.items;
  }
  async ready() {}
  async close() {
    clearInterval(this.sweeper);
  }
}


/** ioredis' errors while Redis is down or restarting (the store fails fast rather than buffering). */
export function isRedisDown(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string };
  return (
    e?.name === 'MaxRetriesPerRequestError' ||
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(e?.code ?? '') ||
    /enableOfflineQueue|Connection is closed|Stream isn't writeable/i.test(e?.message ?? '')
  );
}
