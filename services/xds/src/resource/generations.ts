/**
 * Values kept from one snapshot to the next: what the build before the last one made and the last one did
 * not use again is forgotten, so what is held is about two configurations' worth at most.
 */
export class Generations<V> {
  #current = new Map<string, V>();
  #previous = new Map<string, V>();

  /** The value kept under `key`, else the one `make` gives, kept from now on. */
  get(key: string, make: () => V): V {
    const value = this.#current.get(key);
    if (value !== undefined) return value;
    const made = this.#previous.get(key) ?? make();
    this.#current.set(key, made);
    return made;
  }

  /** Starts a new build. */
  next(): void {
    this.#previous = this.#current;
    this.#current = new Map();
  }
}
