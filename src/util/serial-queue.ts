// Runs tasks one after another per key (a message, a job, a process-wide lock), so edits land in order and
// check-then-act sequences cannot interleave. Different keys run concurrently.

export class SerialQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  /** Runs `task` once every task queued earlier under `key` has settled; resolves or rejects with it. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const result = (this.tails.get(key) ?? Promise.resolve()).then(task);
    const tail = result.catch(() => {});
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** Resolves once everything queued so far has settled (graceful shutdown, tests). */
  async idle(): Promise<void> {
    await Promise.all(this.tails.values());
  }
}
