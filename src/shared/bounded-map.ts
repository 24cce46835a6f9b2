/**
 * A Map that holds at most `max` entries and drops the oldest insertion when a new key would
 * exceed it. For per-process caches keyed by client input (tenants, query texts, API keys,
 * client addresses), which would otherwise grow without bound under many distinct keys.
 * `set` of an existing key moves it to the newest position.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  readonly max: number;

  constructor(max: number) {
    super();
    if (!Number.isInteger(max) || max < 1) throw new RangeError(`BoundedMap max must be >= 1, got ${max}`);
    this.max = max;
  }

  override set(key: K, value: V): this {
    super.delete(key);
    super.set(key, value);
    while (this.size > this.max) {
      const oldest = this.keys().next();
      if (oldest.done) break;
      super.delete(oldest.value);
    }
    return this;
  }
}
