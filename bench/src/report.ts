import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { MachineInfo } from './machine.js';
import type { BenchOptions, Figure, Unit } from './section.js';
import { summarize, type Summary } from './stats.js';

/** One figure as reported: its summary, and for a Paddock figure its baseline and ratio. */
export interface FigureReport extends Summary {
  readonly unit: Unit;
  readonly baseline?: string;
  /** This figure's median over its baseline's median (same run). */
  readonly ratio?: number;
}

/** What latest.json holds. */
export interface Report {
  readonly machine: MachineInfo;
  readonly settings: BenchOptions;
  readonly figures: Readonly<Record<string, FigureReport>>;
  /** Jobs that did not end as they should (the run exits non-zero); absent when there were none. */
  readonly failures?: readonly string[];
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

/** Summaries and ratios of a run's figures; a baseline must be a figure of the same run. */
export function buildReport(machine: MachineInfo, settings: BenchOptions, figures: readonly Figure[], failures: readonly string[] = []): Report {
  const summaries = new Map<string, Summary>();
  for (const f of figures) {
    if (summaries.has(f.name)) throw new Error(`figure ${f.name} is measured twice`);
    summaries.set(f.name, summarize(f.samples));
  }
  const out: Record<string, FigureReport> = {};
  for (const f of figures) {
    const s = summaries.get(f.name)!;
    const entry: FigureReport = { unit: f.unit, min: round(s.min, 2), median: round(s.median, 2), p95: round(s.p95, 2), n: s.n };
    if (f.baseline === undefined) {
      out[f.name] = entry;
      continue;
    }
    const base = summaries.get(f.baseline);
    if (!base) throw new Error(`figure ${f.name} names baseline ${f.baseline}, which this run did not measure`);
    out[f.name] = { ...entry, baseline: f.baseline, ratio: round(s.median / base.median, 3) };
  }
  return { machine, settings, figures: out, ...(failures.length > 0 ? { failures: [...failures] } : {}) };
}

const num = (x: number): string => x.toFixed(1);

/** The report as a markdown page: the machine, then one table row per figure. */
export function renderMarkdown(report: Report): string {
  const { machine: m, settings: s } = report;
  const lines = [
    '# Paddock benchmark: raw Docker beside Paddock',
    '',
    `Measured ${m.date} on ${m.cpus} × ${m.cpuModel}, ${m.memoryGb} GB RAM, Linux ${m.kernel}, Node ${m.node}, Docker engine ${m.docker}.`,
    `${s.samples} samples per figure after one warm-up; burst: ${s.burstRounds} round(s) of ${s.burstJobs} jobs, ${s.capacity} containers at once; state polled every ${s.pollMs} ms.`,
    '',
    '| figure | unit | n | min | median | p95 | baseline | ratio |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- | ---: |',
  ];
  for (const [name, f] of Object.entries(report.figures)) {
    const ratio = f.ratio === undefined ? '' : f.ratio.toFixed(2);
    lines.push(`| ${name} | ${f.unit} | ${f.n} | ${num(f.min)} | ${num(f.median)} | ${num(f.p95)} | ${f.baseline ?? ''} | ${ratio} |`);
  }
  lines.push(
    '',
    'ratio = median of the figure / median of its baseline, both from this run. For ms, above 1 means Paddock takes',
    'longer than raw Docker (or raw SSH); for jobs/s and MB/s, higher is better: below 1 means Paddock gets through',
    'fewer jobs or bytes. See bench/README.md for what each figure includes and the goals.',
  );
  if (report.failures?.length) {
    lines.push('', `## Failures (${report.failures.length})`, '', ...report.failures.map((f) => `- ${f}`));
  }
  return `${lines.join('\n')}\n`;
}

/** Writes latest.json and latest.md into `dir`; their paths. */
export async function writeReport(dir: string, report: Report): Promise<{ json: string; markdown: string }> {
  await mkdir(dir, { recursive: true });
  const json = join(dir, 'latest.json');
  const markdown = join(dir, 'latest.md');
  await writeFile(json, `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(markdown, renderMarkdown(report));
  return { json, markdown };
}
