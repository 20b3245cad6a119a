import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { runChaos } from './chaos.js';
import { writeChaosReport } from './chaosReport.js';
import { ChaosUsageError, parseChaosArgs, USAGE } from './options.js';

const RESULTS = fileURLToPath(new URL('../../../results/', import.meta.url));

async function main(): Promise<number> {
  let parsed: ReturnType<typeof parseChaosArgs>;
  try {
    parsed = parseChaosArgs(process.argv.slice(2), RESULTS);
  } catch (err) {
    if (!(err instanceof ChaosUsageError) && (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') !== true) throw err;
    process.stderr.write(`chaos: ${(err as Error).message}\n\n${USAGE}\n`);
    return 2;
  }
  if (parsed === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const report = await runChaos(parsed.options, {
    dockerSocket: process.env['DOCKER_SOCKET'] ?? '/var/run/docker.sock',
    log: (line) => process.stderr.write(`${line}\n`),
  });
  const written = await writeChaosReport(resolve(parsed.out), report);
  process.stderr.write(`wrote ${written.json} and ${written.markdown}\n`);
  if (!report.passed) {
    const c = report.counts;
    process.stderr.write(
      `chaos: failed: lost ${c.lost}, duplicated ${c.duplicated}, wrong ${c.wrong}, orphaned ${c.orphaned}, parts not back ${report.notBack.length}, ` +
        `not accepted ${report.executions.unaccepted.length}${report.runProblems.length > 0 ? `; ${report.runProblems.join('; ')}` : ''}` +
        `${report.logsKeptIn ? `; logs kept in ${report.logsKeptIn}` : ''}\n`,
    );
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`chaos: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
