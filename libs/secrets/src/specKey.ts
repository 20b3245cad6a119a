import { SharedKey } from './sharedKey.js';

/**
 * The key that seals what an execution's spec carries from the gateway to the broker (sealSpec,
 * unsealSpec), and nothing else. It is not the key of users' stored secrets (SecretBox): a broker holds
 * this one only, so it can open the specs sent to it but not the secrets table, and a spec sealed with
 * the secrets key does not open.
 */
export class SpecKey extends SharedKey {
  readonly purpose = 'spec' as const;

  /** The key in `file`, made (mode 0600) if there is none: for whoever seals (the gateway) and `paddock up`. */
  static async fromFile(file: string): Promise<SpecKey> {
    return new SpecKey(await SharedKey.boxFromFile(file), file);
  }

  /** The key in `file`, which must exist: for whoever only opens (the broker). */
  static async existing(file: string): Promise<SpecKey> {
    const box = await SharedKey.existingBox(
      file,
      "it is the gateway's spec key, which `paddock up` makes at its first start; point PADDOCK_SPEC_KEY_FILE at a copy of it",
    );
    return new SpecKey(box, file);
  }

  static withKey(key: Buffer): SpecKey {
    return new SpecKey(SharedKey.boxWithKey(key, 'a spec key'), undefined);
  }

  protected mismatch(): string {
    return 'the gateway that sealed it and the broker must share PADDOCK_SPEC_KEY_FILE';
  }
}
