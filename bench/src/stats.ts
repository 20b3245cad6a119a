/** The summary of one figure's samples. */
export interface Summary {
  readonly min: number;
  readonly median: number;
  readonly p95: number;
  readonly n: number;
}

/**
 * min, median (the mean of the two middle samples when n is even) and p95 by the nearest-rank method
 * (the smallest sample at or above 95 % of them: with fewer than 20 samples that is the maximum).
 */
export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) throw new RangeError('summarize needs at least one sample');
  for (const s of samples) if (!Number.isFinite(s)) throw new RangeError(`sample ${s} is not a finite number`);
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const at = (i: number): number => sorted[i]!;
  const mid = Math.floor(n / 2);
  const median = n % 2 === 1 ? at(mid) : (at(mid - 1) + at(mid)) / 2;
  return { min: at(0), median, p95: at(Math.ceil(0.95 * n) - 1), n };
}
