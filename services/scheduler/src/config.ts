import { commonConfig, EnvReader, type CommonConfig, type Env } from '@paddock/config';
import { ConfigError } from '@paddock/errors';

export interface SchedulerConfig extends CommonConfig {
  /** Containers one owner may have provisioning or executing at once; the rest wait in the queue. */
  readonly maxRunningPerOwner: number;
  /** What happens to a request over the owner's limit: wait in the queue, or fail at once. */
  readonly overLimit: 'queue' | 'reject';
  /** A broker silent this long is considered gone, and its executions failed. */
  readonly brokerLostAfterMs: number;
  /** How long a launch is retried against an unreachable or full broker before the execution fails. */
  readonly launchRetryForMs: number;
  readonly cancelGraceMs: number;
}

export function schedulerConfig(env: Env): SchedulerConfig {
  const read = new EnvReader(env);
  const overLimit = read.string('PADDOCK_OVER_LIMIT', 'queue');
  if (overLimit !== 'queue' && overLimit !== 'reject') throw new ConfigError('PADDOCK_OVER_LIMIT', 'expected "queue" or "reject"');
  return Object.freeze({
    ...commonConfig(env),
    maxRunningPerOwner: read.int('PADDOCK_MAX_RUNNING_PER_OWNER', 64, { min: 1 }),
    overLimit,
    brokerLostAfterMs: read.int('PADDOCK_BROKER_LOST_AFTER_MS', 120_000, { min: 5_000 }),
    launchRetryForMs: read.int('PADDOCK_LAUNCH_RETRY_FOR_MS', 120_000, { min: 1_000 }),
    cancelGraceMs: read.int('PADDOCK_CANCEL_GRACE_MS', 5_000),
  });
}
