// Store keys, in one place: every record the bot and the workers share.
export const keys = {
  job: (id: string) => `job:${id}`,
  resultMeta: (id: string) => `result:${id}:meta`,
  resultPng: (id: string) => `result:${id}:png`,
  resultWplus: (id: string) => `result:${id}:wplus`,
  resultDelta: (id: string) => `result:${id}:delta`,
  /** A photo result's aligned before → after strip (PNG). */
  resultBeforeAfter: (id: string) => `result:${id}:before-after`,
  /** A user's photo (the uploaded bytes), its inversion (JSON: transform, face, pack) and its W+; all with the result TTL. */
  photo: (key: string) => `photo:${key}:bytes`,
  photoInversion: (key: string) => `photo:${key}:inversion`,
  photoWplus: (key: string) => `photo:${key}:wplus`,
  /** The latest small progress image of a running gradient job (optimize, mapper training), kept while it runs. */
  preview: (id: string) => `preview:${id}`,
  /** A running gradient job's step and losses (StepProgress), written before each progress report. */
  progress: (id: string) => `progress:${id}`,
  /** Set when a mapper training job first starts: a rerun (worker died or stopped) resumes from its checkpoint. */
  trainStarted: (id: string) => `train-started:${id}`,
  /** Present while some live worker can run jobs needing `capability` (renewed by its heartbeat). */
  capability: (capability: string) => `capability:${capability}`,
  cancel: (id: string) => `cancel:${id}`,
  claim: (id: string, what: string) => `claim:${id}:${what}`,
  link: (platform: string, messageKey: string) => `link:${platform}:${messageKey}`,
  /** The message keys linked to a job (newest first), so a ❌ can remove every message that shows it. */
  jobLinks: (platform: string, jobId: string) => `links:${platform}:${jobId}`,
  /** Set when ❌ deleted a finished result: follow-ups on what is left of it are refused. */
  deleted: (id: string) => `deleted:${id}`,
  nudge: (dedupeKey: string) => `nudge:${dedupeKey}`,
  /** A user's latest finished job ids (newest first), for `source` suggestions. */
  recent: (platform: string, userId: string) => `recent:${platform}:${userId}`,
  settings: (scope: string) => `settings:${scope}`,
  settingsLog: (scope: string) => `settings-log:${scope}`,
};
