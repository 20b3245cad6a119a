import { KEY_BYTES, readKeyFile } from './keyFile.js';
import { SecretBox } from './secretBox.js';
import { SecretKeyError } from './secretKeyError.js';

/**
 * A key that two services share for one purpose, and nothing else: whoever seals makes it at its first
 * start (`fromFile`), whoever only opens needs the file to exist (`existing`), since a key it made itself
 * would open nothing. Each purpose is a subclass with a `purpose` of its own literal type, so that the
 * compiler refuses one key where another is meant.
 */
export abstract class SharedKey {
  abstract readonly purpose: string;
  readonly #box: SecretBox;
  /** The file it was read from, for errors; undefined for a key given in memory. */
  readonly file: string | undefined;

  protected constructor(box: SecretBox, file: string | undefined) {
    this.#box = box;
    this.file = file;
  }

  protected static async boxFromFile(file: string): Promise<SecretBox> {
    return SecretBox.withKey(await readKeyFile(file, { create: true }));
  }

  protected static async existingBox(file: string, missing: string): Promise<SecretBox> {
    return SecretBox.withKey(await readKeyFile(file, { create: false, missing }));
  }

  protected static boxWithKey(key: Buffer, what: string): SecretBox {
    if (key.length !== KEY_BYTES) throw new SecretKeyError(`${what} has ${KEY_BYTES} bytes, got ${key.length}`);
    return SecretBox.withKey(key);
  }

  /** Who must share the file, for the error of a value that does not open. */
  protected abstract mismatch(): string;

  seal(plaintext: string, associated: string): Buffer {
    return this.#box.seal(plaintext, associated);
  }

  open(sealed: Buffer, associated: string): string {
    try {
      return this.#box.open(sealed, associated);
    } catch (err) {
      const which = this.file === undefined ? `this ${this.purpose} key` : `the ${this.purpose} key in ${this.file}`;
      throw new SecretKeyError(`a sealed value does not open with ${which}: ${this.mismatch()}`, { cause: err });
    }
  }
}
