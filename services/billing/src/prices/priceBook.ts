import { cpuCostMicros, memoryCostMicros, tokensCostMicros } from '../money.js';
import { normalizeModel, type ModelPrice, type PriceList } from './priceList.js';

/** Where a price entry may end inside a longer model name: `gpt-4o` prices `gpt-4o-2024-08-06`, not `gpt-4o1`. */
const NAME_BOUNDARIES = new Set(['-', '@', ':']);

/** What one LLM call used, as the metering proxy reports it. */
export interface TokenCounts {
  readonly inputTokens: number;
  readonly outputTokens: number;
  readonly cacheReadTokens: number;
  readonly cacheWriteTokens: number;
}

export interface LlmCost {
  readonly costMicros: number;
  /** No entry prices this model: the cost is unknown, not zero. */
  readonly unpriced: boolean;
}

/**
 * One price version, ready to price usage. A model is priced by the entry of its provider whose name is the
 * model's, else by the longest entry that the model's name starts with, up to a `-`, `@` or `:`: dated and
 * suffixed names (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`, `claude-3-5-haiku-latest`) find their
 * family's entry, and a longer family (`gpt-4o-mini`) wins over a shorter one (`gpt-4o`). An entry never
 * prices a shorter name: `claude-sonnet-4-5-20250929` does not price the alias `claude-sonnet-4-5`, which
 * the provider may move to another snapshot.
 */
export class PriceBook {
  readonly #byProvider = new Map<string, Map<string, ModelPrice>>();

  constructor(readonly prices: PriceList) {
    for (const entry of prices.models) {
      let models = this.#byProvider.get(entry.provider);
      if (!models) this.#byProvider.set(entry.provider, (models = new Map()));
      models.set(entry.model, entry);
    }
  }

  get version(): number {
    return this.prices.version;
  }

  /** The entry that prices `model` of `provider`, if any. */
  modelPrice(provider: string, model: string): ModelPrice | undefined {
    const models = this.#byProvider.get(provider.trim().toLowerCase());
    if (!models) return undefined;
    const name = normalizeModel(model);
    const exact = models.get(name);
    if (exact) return exact;
    for (let end = name.length - 1; end > 0; end--) {
      if (!NAME_BOUNDARIES.has(name[end] as string)) continue;
      const entry = models.get(name.slice(0, end));
      if (entry) return entry;
    }
    return undefined;
  }

  /** Each kind of token at its own price, each rounded half up, summed. */
  llmCost(provider: string, model: string, tokens: TokenCounts): LlmCost {
    const price = this.modelPrice(provider, model);
    if (!price) return { costMicros: 0, unpriced: true };
    return {
      costMicros:
        tokensCostMicros(tokens.inputTokens, price.inputMicrosPerMillion) +
        tokensCostMicros(tokens.outputTokens, price.outputMicrosPerMillion) +
        tokensCostMicros(tokens.cacheReadTokens, price.cacheReadMicrosPerMillion) +
        tokensCostMicros(tokens.cacheWriteTokens, price.cacheWriteMicrosPerMillion),
      unpriced: false,
    };
  }

  /**
   * What an execution's compute totals cost, from its start. A compute row's cost is the difference of this
   * between its totals and the previous ones, so the rows of an execution add up to its totals' cost
   * without a rounding error per row.
   */
  computeCostMicros(cpuMsTotal: number, memoryMibMsTotal: number): number {
    return (
      cpuCostMicros(cpuMsTotal, this.prices.compute.cpuMicrosPerMillionCpuSeconds) +
      memoryCostMicros(memoryMibMsTotal, this.prices.compute.memoryMicrosPerMillionGibSeconds)
    );
  }
}
