// Downloads a user's file from a platform's own file host for the core's PhotoIntake: no redirects
// (a redirect could lead off the host), and reading stops as soon as the body passes the limit.
import type { PhotoFetcher } from '../core/types.ts';

const FETCH_TIMEOUT_MS = 30_000;

/** The body of `url`, rejected past `maxBytes` (by content-length when given, else while reading). */
export async function fetchBounded(url: string, maxBytes: number, headers: Record<string, string> = {}): Promise<Uint8Array> {
  const res = await fetch(url, { headers, redirect: 'error', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (!res.ok || !res.body) {
    await res.body?.cancel();
    throw new Error(`download failed: HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get('content-length'));
  if (declared > maxBytes) {
    await res.body.cancel();
    throw new Error('download too large');
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > maxBytes) {
      await reader.cancel();
      throw new Error('download too large');
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A PhotoFetcher for the given origins (`https://host`, exact match) and URL-path prefix test. */
export function originFetcher(origins: string[], headers: () => Record<string, string> = () => ({})): PhotoFetcher {
  const allowed = new Set(origins);
  return {
    hosts(url: string): boolean {
      try {
        const u = new URL(url);
        return allowed.has(u.origin) && !u.username && !u.password;
      } catch {
        return false;
      }
    },
    fetch: (url, maxBytes) => fetchBounded(url, maxBytes, headers()),
  };
}
