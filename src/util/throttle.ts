// Progress edits are rate limited by the platforms (Discord per message, Slack per workspace): per key,
// pass on at most one value every interval, always the latest, and never reorder a final one.

export class Throttle<T> {
  private readonly slots = new Map<string, { lastAt: number; pending?: T; timer?: NodeJS.Timeout }>();

  constructor(
    private readonly intervalMs: number,
    private readonly emit: (key: string, value: T) => void,
  ) {}

  /** Emits `value` now if the key was quiet for an interval, else at the interval's end unless a newer value replaces it. */
  push(key: string, value: T): void {
    const slot = this.slot(key);
    if (!slot.timer && Date.now() >= slot.lastAt + this.intervalMs) {
      slot.lastAt = Date.now();
      this.emit(key, value);
      return;
    }
    slot.pending = value;
    if (slot.timer) return;
    slot.timer = setTimeout(() => {
      slot.timer = undefined;
      const next = slot.pending;
      slot.pending = undefined;
      if (next === undefined) return;
      slot.lastAt = Date.now();
      this.emit(key, next);
    }, Math.max(0, slot.lastAt + this.intervalMs - Date.now()));
  }

  /** Something else was shown for the key just now (a reply, a final state): drops what is pending and restarts the interval. */
  shown(key: string): void {
    const slot = this.slot(key);
    clearTimeout(slot.timer);
    slot.timer = undefined;
    slot.pending = undefined;
    slot.lastAt = Date.now();
  }

  forget(key: string): void {
    clearTimeout(this.slots.get(key)?.timer);
    this.slots.delete(key);
  }

  close(): void {
    for (const slot of this.slots.values()) clearTimeout(slot.timer);
    this.slots.clear();
  }

  private slot(key: string) {
    let slot = this.slots.get(key);
    if (!slot) this.slots.set(key, (slot = { lastAt: 0 }));
    return slot;
  }
}
