import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { KEY_BYTES, readKeyFile } from './keyFile.js';
import { SecretKeyError } from './secretKeyError.js';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

/**
 * AES-256-GCM with one key, for values at rest. Each value is bound to where it is stored (the associated
 * data), so a sealed value copied to another owner or name does not open.
 */
export class SecretBox {
  readonly #key: Buffer;
  /** Where the key came from, for errors: `the key in <file>`, or `this key`. */
  readonly #source: string;

  private constructor(key: Buffer, source: string) {
    this.#key = key;
    this.#source = source;
  }

  /** The key from `file` (base64), created with mode 0600 by whichever process starts first. */
  static async fromFile(file: string): Promise<SecretBox> {
    return new SecretBox(await readKeyFile(file, { create: true }), `the key in ${file}`);
  }

  static withKey(key: Buffer): SecretBox {
    if (key.length !== KEY_BYTES) throw new SecretKeyError(`a secret key has ${KEY_BYTES} bytes, got ${key.length}`);
    return new SecretBox(Buffer.from(key), 'this key');
  }

  seal(plaintext: string, associated: string): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, nonce);
    cipher.setAAD(Buffer.from(associated));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([nonce, body, cipher.getAuthTag()]);
  }

  open(sealed: Buffer, associated: string): string {
    if (sealed.length < NONCE_BYTES + TAG_BYTES) throw new SecretKeyError('a sealed secret is too short');
    const decipher = createDecipheriv('aes-256-gcm', this.#key, sealed.subarray(0, NONCE_BYTES));
    decipher.setAAD(Buffer.from(associated));
    decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
    try {
      return Buffer.concat([decipher.update(sealed.subarray(NONCE_BYTES, sealed.length - TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch (err) {
      throw new SecretKeyError(`a sealed value does not open with ${this.#source} (was it sealed with another key, or the key file replaced?)`, { cause: err });
    }
  }
}
