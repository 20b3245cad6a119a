/**
 * Money is integer micro-units (a millionth of the prices' currency), and every price is an integer too:
 * costs are computed in BigInt so that no product of a count and a price loses a digit, then rounded half
 * up once per ledger row.
 */

const MILLION = 1_000_000n;
/** Milliseconds per second times a million: a price per million seconds applied to milliseconds. */
const MS_PER_MILLION_SECONDS = 1_000_000_000n;
const MIB_PER_GIB = 1024n;

/** `numerator / denominator` rounded half up; both non-negative. */
function roundedQuotient(numerator: bigint, denominator: bigint): bigint {
  return (numerator + denominator / 2n) / denominator;
}

/** A BigInt that is a count of micro-units, back as a number: ledger figures stay far below 2^53. */
function toNumber(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`${value} micro-units is beyond what a ledger row can hold`);
  return Number(value);
}

/** The cost of `tokens` at `microsPerMillion` micro-units per million tokens, rounded half up. */
export function tokensCostMicros(tokens: number, microsPerMillion: number): number {
  return toNumber(roundedQuotient(BigInt(tokens) * BigInt(microsPerMillion), MILLION));
}

/** The cost of `cpuMs` milliseconds of CPU time at `microsPerMillionCpuSeconds`, rounded half up. */
export function cpuCostMicros(cpuMs: number, microsPerMillionCpuSeconds: number): number {
  return toNumber(roundedQuotient(BigInt(cpuMs) * BigInt(microsPerMillionCpuSeconds), MS_PER_MILLION_SECONDS));
}

/** The cost of `mibMs` MiB·milliseconds of memory at `microsPerMillionGibSeconds`, rounded half up. */
export function memoryCostMicros(mibMs: number, microsPerMillionGibSeconds: number): number {
  return toNumber(roundedQuotient(BigInt(mibMs) * BigInt(microsPerMillionGibSeconds), MS_PER_MILLION_SECONDS * MIB_PER_GIB));
}

/** "$12.34" for USD, "12.34 EUR" for another currency; a fraction of a cent shows four decimals. */
export function formatMicros(micros: number, currency: string): string {
  const negative = micros < 0;
  const abs = BigInt(Math.abs(micros));
  const wholeCents = abs % 10_000n === 0n;
  const decimals = wholeCents ? 2 : 4;
  const scaled = roundedQuotient(abs, 10n ** BigInt(6 - decimals));
  const text = `${scaled / 10n ** BigInt(decimals)}.${(scaled % 10n ** BigInt(decimals)).toString().padStart(decimals, '0')}`;
  const signed = negative ? `-${text}` : text;
  return currency === 'USD' ? `${negative ? '-' : ''}$${text}` : `${signed} ${currency}`;
}
