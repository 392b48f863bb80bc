// Photos attached to /styleclip: only Discord's own file hosts are fetched (the resolved attachment's URL).
import type { PhotoFetcher } from '../../core/types.ts';
import { originFetcher } from '../photo-fetch.ts';

/** Where Discord serves attachments. */
export const DISCORD_FILE_ORIGINS = ['https://cdn.discordapp.com', 'https://media.discordapp.net'];

/**
 * Discord's file hosts; with `DISCORD_API_BASE` set (a stand-in for Discord, e.g. a test fake), that
 * origin too, since it then also serves the attachments. Production sets no base: the CDN only.
 */
export function discordPhotoFetcher(env: NodeJS.ProcessEnv): PhotoFetcher {
  const base = env.DISCORD_API_BASE?.trim();
  return originFetcher(base ? [...DISCORD_FILE_ORIGINS, new URL(base).origin] : DISCORD_FILE_ORIGINS);
}
