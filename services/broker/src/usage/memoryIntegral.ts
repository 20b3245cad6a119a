const MiB = 1024 * 1024;

/**
 * Memory in use integrated over time, in MiB·ms, from samples taken about once a second. Between two
 * samples it is the trapezoid (memory taken to move in a straight line from one to the next). The first
 * sample's value is taken back to where the integral starts (the job's start, or the last total published
 * before an adoption), and the last sample's value holds up to the end: nothing else is known there.
 */
export class MemoryIntegral {
  private last: { readonly atMs: number; readonly mib: number } | null = null;

  constructor(
    private totalMibMs: number,
    /** Up to when `totalMibMs` counts. */
    private readonly sinceMs: number,
  ) {}

  add(atMs: number, memoryBytes: number): void {
    const mib = memoryBytes / MiB;
    if (this.last === null) {
      this.totalMibMs += mib * Math.max(0, atMs - this.sinceMs);
    } else {
      // The wall clock may step back: time never counts negative.
      this.totalMibMs += ((this.last.mib + mib) / 2) * Math.max(0, atMs - this.last.atMs);
    }
    this.last = { atMs: Math.max(atMs, this.last?.atMs ?? atMs), mib };
  }

  /** The integral up to `atMs`, the last sample's value holding since it was taken. */
  totalAt(atMs: number): number {
    if (this.last === null) return this.totalMibMs;
    return this.totalMibMs + this.last.mib * Math.max(0, atMs - this.last.atMs);
  }

  /** When the last sample was taken; null before the first. */
  get lastSampleAtMs(): number | null {
    return this.last?.atMs ?? null;
  }
}
