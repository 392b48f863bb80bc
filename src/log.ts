// Structured logs (pino). Secrets never reach them: known secret fields are redacted wherever they appear.
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

const SECRET_PATHS = ['token', 'password', 'secret', 'authorization', 'signingSecret', 'appToken', 'botToken', 'redisUrl'];

export function createLogger(level = process.env.LOG_LEVEL ?? 'info', name = 'styleclip', destination?: DestinationStream): Logger {
  const options = { name, level, redact: { paths: [...SECRET_PATHS, ...SECRET_PATHS.map((p) => `*.${p}`)], censor: '[redacted]' } };
  return destination ? pino(options, destination) : pino(options);
}

/** Removes credentials from a Redis URL before it is shown anywhere. */
export function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    if (u.username) u.username = '***';
    return u.toString();
  } catch {
    return '[unparsable url]';
  }
}

export const silentLogger: Logger = pino({ level: 'silent' });
