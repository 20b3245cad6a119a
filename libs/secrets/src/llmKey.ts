import { SharedKey } from './sharedKey.js';

/**
 * The key that seals an execution's LLM provider keys from the gateway (which holds users' and projects'
 * secrets) to billing's metering proxy (which alone swaps them into the calls an agent makes), and nothing
 * else: neither the bus, the scheduler nor the broker can open them, and no container ever holds them.
 */
export class LlmKey extends SharedKey {
  readonly purpose = 'llm' as const;

  /** The key in `file`, made (mode 0600) if there is none: for whoever seals (the gateway) and `paddock up`. */
  static async fromFile(file: string): Promise<LlmKey> {
    return new LlmKey(await SharedKey.boxFromFile(file), file);
  }

  /** The key in `file`, which must exist: for whoever only opens (billing's metering proxy). */
  static async existing(file: string): Promise<LlmKey> {
    const box = await SharedKey.existingBox(
      file,
      "it is the gateway's LLM key, which `paddock up` makes at its first start; point PADDOCK_LLM_KEY_FILE at a copy of it",
    );
    return new LlmKey(box, file);
  }

  static withKey(key: Buffer): LlmKey {
    return new LlmKey(SharedKey.boxWithKey(key, 'an LLM key'), undefined);
  }

  protected mismatch(): string {
    return 'the gateway that sealed it and billing must share PADDOCK_LLM_KEY_FILE';
  }
}
