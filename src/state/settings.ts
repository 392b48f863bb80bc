// Per-server settings (Discord guild, Slack team, playground), persisted in the store; every change is audited.
import type { Logger } from '../log.ts';
import { getJSON, setJSON, type Store } from './store.ts';
import { keys } from './keys.ts';
import type { PackCatalog } from '../engine/catalog.ts';
import { strengthProblem } from '../engine/types.ts';

export type MethodSetting = 'auto' | 'global' | 'mapper';

export interface ServerSettings {
  /** Pack name; null = the deployment's default pack. */
  pack: string | null;
  method: MethodSetting;
  strengthMin: number;
  strengthMax: number;
  /** null = the pack's default. */
  strengthDefault: number | null;
  /** null = the pack's default; 'auto' = the official automatic β. */
  threshold: number | 'auto' | null;
  blockedWords: string[];
  /** Channel ids where /styleclip may run; empty = everywhere. */
  channels: string[];
  userRunning: number;
  userWaiting: number;
  serverRunning: number;
  serverWaiting: number;
  /** Whether `method:optimize` (latent optimization, minutes of GPU per edit) may run here. */
  optimize: boolean;
  /** Most optimization steps a user may ask for; also the default (capped at the official 300). */
  optimizeStepsMax: number;
  /** Default weight of the pull toward the start, Σ(w − w₀)² (official 0.008); ➕/➖ change it per result. */
  optimizeL2: number;
  /** Weight of the ArcFace ID loss (official 0; the notebook uses 0.005); > 0 needs identity/ in the pack. */
  optimizeId: number;
  /** Results are hidden until asked for: Discord spoiler attachments, a "show image" button on Slack. */
  spoiler: boolean;
  /** Most steps an admin's mapper training may run (the official schedule: 50000). */
  trainStepsMax: number;
}

/** Steps an admin may allow at most (`optimize-steps-max`); the official loop runs 300. */
export const OPTIMIZE_STEPS_LIMIT = 2000;
/** Highest `train-steps-max` (the toolkit's own bound). */
export const TRAIN_STEPS_LIMIT = 1_000_000;
/** Largest λ an admin or a nudge may set (L2 and ID). */
export const OPTIMIZE_LAMBDA_MAX = 10;

// Generous enough for a small community (Midjourney: 3 running + 10 waiting per user).
export const DEFAULT_SETTINGS: ServerSettings = {
  pack: null,
  method: 'auto',
  strengthMin: -10,
  strengthMax: 10,
  strengthDefault: null,
  threshold: null,
  blockedWords: [],
  channels: [],
  userRunning: 3,
  userWaiting: 10,
  serverRunning: 12,
  serverWaiting: 100,
  optimize: true,
  optimizeStepsMax: 300,
  optimizeL2: 0.008,
  optimizeId: 0,
  spoiler: false,
  trainStepsMax: 50_000,
};

/** Setting names as users type them, with how to parse and check each. */
export const SETTING_KEYS = [
  'pack',
  'method',
  'strength-min',
  'strength-max',
  'strength-default',
  'threshold',
  'channels',
  'user-running',
  'user-waiting',
  'server-running',
  'server-waiting',
  'optimize',
  'optimize-steps-max',
  'optimize-l2',
  'optimize-id',
  'spoiler',
  'train-steps-max',
] as const;
export type SettingKey = (typeof SETTING_KEYS)[number];

export class SettingsError extends Error {
  override name = 'SettingsError';
}

function num(key: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new SettingsError(`${key} must be a number, got "${value}".`);
  return n;
}

/** A strength bound: jobs outside the engine's range would be queued only to fail in the worker. */
function strength(key: string, value: string): number {
  const n = num(key, value);
  const problem = strengthProblem(n, key);
  if (problem) throw new SettingsError(`${problem}.`);
  return n;
}

function limit(key: string, value: string): number {
  const n = num(key, value);
  if (!Number.isInteger(n) || n < 0 || n > 10_000) throw new SettingsError(`${key} must be a whole number from 0 to 10000.`);
  return n;
}

/** A switch: on/off (true/false, yes/no). */
function onOff(key: string, value: string): boolean {
  const v = value.trim().toLowerCase();
  if (!['on', 'off', 'true', 'false', 'yes', 'no'].includes(v)) throw new SettingsError(`${key} must be on or off.`);
  return ['on', 'true', 'yes'].includes(v);
}

const isDefault = (value: string) => ['default', 'none', ''].includes(value.trim().toLowerCase());

/** Applies `key = value` to a copy of `s`, or throws a SettingsError that says what is wrong. */
export function applySetting(s: ServerSettings, key: string, value: string, packs: PackCatalog): ServerSettings {
  const next = { ...s };
  switch (key as SettingKey) {
    case 'pack': {
      if (isDefault(value)) next.pack = null;
      else if (!packs.get(value)) {
        throw new SettingsError(`No pack named "${value}". Available: ${packs.list().map((p) => p.name).join(', ')}.`);
      } else next.pack = value;
      break;
    }
    case 'method':
      if (!['auto', 'global', 'mapper'].includes(value)) throw new SettingsError('method must be auto, global or mapper.');
      next.method = value as MethodSetting;
      break;
    case 'strength-min':
      next.strengthMin = strength(key, value);
      break;
    case 'strength-max':
      next.strengthMax = strength(key, value);
      break;
    case 'strength-default':
      next.strengthDefault = isDefault(value) ? null : strength(key, value);
      break;
    case 'threshold': {
      if (isDefault(value)) next.threshold = null;
      else if (value === 'auto') next.threshold = 'auto';
      else {
        const t = num(key, value);
        if (t < 0 || t > 1) throw new SettingsError('threshold must be from 0 to 1, "auto" or "default".');
        next.threshold = t;
      }
      break;
    }
    case 'channels':
      next.channels = ['all', 'any', '*'].includes(value.trim().toLowerCase())
        ? []
        : value
            .split(/[\s,]+/)
            .map((c) => c.replace(/^<#(\w+)(\|.*)?>$/, '$1').replace(/^#/, ''))
            .filter(Boolean);
      break;
    case 'user-running':
      next.userRunning = limit(key, value);
      break;
    case 'user-waiting':
      next.userWaiting = limit(key, value);
      break;
    case 'server-running':
      next.serverRunning = limit(key, value);
      break;
    case 'server-waiting':
      next.serverWaiting = limit(key, value);
      break;
    case 'optimize':
      next.optimize = onOff(key, value);
      break;
    case 'optimize-steps-max': {
      const n = num(key, value);
      if (!Number.isInteger(n) || n < 1 || n > OPTIMIZE_STEPS_LIMIT) throw new SettingsError(`${key} must be a whole number from 1 to ${OPTIMIZE_STEPS_LIMIT}.`);
      next.optimizeStepsMax = n;
      break;
    }
    case 'optimize-l2':
    case 'optimize-id': {
      const n = num(key, value);
      if (n < 0 || n > OPTIMIZE_LAMBDA_MAX) throw new SettingsError(`${key} must be from 0 to ${OPTIMIZE_LAMBDA_MAX}.`);
      if (key === 'optimize-l2') next.optimizeL2 = n;
      else next.optimizeId = n;
      break;
    }
    case 'spoiler':
      next.spoiler = onOff(key, value);
      break;
    case 'train-steps-max': {
      const n = num(key, value);
      if (!Number.isInteger(n) || n < 1 || n > TRAIN_STEPS_LIMIT) throw new SettingsError(`${key} must be a whole number from 1 to ${TRAIN_STEPS_LIMIT}.`);
      next.trainStepsMax = n;
      break;
    }
    default:
      throw new SettingsError(`Unknown setting "${key}". Settings: ${SETTING_KEYS.join(', ')}.`);
  }
  checkSettings(next);
  return next;
}

export function checkSettings(s: ServerSettings) {
  if (s.strengthMin > s.strengthMax) {
    throw new SettingsError(`strength-min (${s.strengthMin}) must not be above strength-max (${s.strengthMax}).`);
  }
  if (s.strengthDefault !== null && (s.strengthDefault < s.strengthMin || s.strengthDefault > s.strengthMax)) {
    throw new SettingsError(`strength-default (${s.strengthDefault}) must be within ${s.strengthMin}…${s.strengthMax}.`);
  }
}

export interface SettingsChange {
  at: string;
  by: { id: string; name?: string };
  change: string;
}

export class SettingsService {
  constructor(
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  async get(scope: string): Promise<ServerSettings> {
    const saved = await getJSON<Partial<ServerSettings>>(this.store, keys.settings(scope));
    return { ...DEFAULT_SETTINGS, ...saved };
  }

  /** Saves new settings and records who changed what. */
  async save(scope: string, next: ServerSettings, by: { id: string; name?: string }, change: string) {
    checkSettings(next);
    await setJSON(this.store, keys.settings(scope), next);
    const entry: SettingsChange = { at: new Date().toISOString(), by, change };
    await this.store.push(keys.settingsLog(scope), JSON.stringify(entry), 200);
    this.log.info({ scope, by, change }, 'settings changed');
  }

  async history(scope: string, count = 10): Promise<SettingsChange[]> {
    return (await this.store.list(keys.settingsLog(scope), count)).map((s) => JSON.parse(s) as SettingsChange);
  }
}
