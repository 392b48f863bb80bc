// A Map with a size cap that forgets the least recently used entry first: caches (text directions) and
// in-process memories (seen event ids, known jobs) that only save work and may lose an entry at any time.

export class BoundedMap<K, V> extends Map<K, V> {
  constructor(private readonly maxSize: number) {
    super();
  }

  /** A hit counts as a use: the entry becomes the newest. */
  override get(key: K): V | undefined {
    if (!super.has(key)) return undefined;
    const value = super.get(key) as V;
    super.delete(key);
    super.set(key, value);
    return value;
  }

  override set(key: K, value: V): this {
    super.delete(key);
    super.set(key, value);
    while (this.size > this.maxSize) this.delete(this.keys().next().value as K);
    return this;
  }
}
