import { KEY_BYTES, readKeyFile } from './keyFile.js';
import { SecretBox } from './secretBox.js';
import { SecretKeyError } from './secretKeyError.js';

/**
 * The key that seals what an execution's spec carries from the gateway to the broker (sealSpec,
 * unsealSpec), and nothing else. It is not the key of users' stored secrets (SecretBox): a broker holds
 * this one only, so it can open the specs sent to it but not the secrets table, and a spec sealed with
 * the secrets key does not open. A class of its own so that the compiler refuses one key for the other.
 */
export class SpecKey {
  readonly #box: SecretBox;
  /** The file it was read from, for errors; undefined for a key given in memory. */
  readonly file: string | undefined;

  private constructor(box: SecretBox, file: string | undefined) {
    this.#box = box;
    this.file = file;
  }

  /** The key in `file`, made (mode 0600) if there is none: for whoever seals (the gateway) and `paddock up`. */
  static async fromFile(file: string): Promise<SpecKey> {
    return new SpecKey(SecretBox.withKey(await readKeyFile(file, { create: true })), file);
  }

  /**
   * The key in `file`, which must exist: for whoever only opens (the broker). A key it made itself would
   * open nothing the gateway sealed, so a missing file stops it with a message instead.
   */
  static async existing(file: string): Promise<SpecKey> {
    const key = await readKeyFile(file, {
      create: false,
      missing: "it is the gateway's spec key, which `paddock up` makes at its first start; point PADDOCK_SPEC_KEY_FILE at a copy of it",
    });
    return new SpecKey(SecretBox.withKey(key), file);
  }

  static withKey(key: Buffer): SpecKey {
    if (key.length !== KEY_BYTES) throw new SecretKeyError(`a spec key has ${KEY_BYTES} bytes, got ${key.length}`);
    return new SpecKey(SecretBox.withKey(key), undefined);
  }

  seal(plaintext: string, associated: string): Buffer {
    return this.#box.seal(plaintext, associated);
  }

  open(sealed: Buffer, associated: string): string {
    try {
      return this.#box.open(sealed, associated);
    } catch (err) {
      const which = this.file === undefined ? 'this spec key' : `the spec key in ${this.file}`;
      throw new SecretKeyError(`a sealed value does not open with ${which}: the gateway that sealed it and the broker must share PADDOCK_SPEC_KEY_FILE`, { cause: err });
    }
  }
}
