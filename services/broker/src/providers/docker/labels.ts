/** Labels on every container Paddock creates: after a crash the broker finds what is its own by these. */
export const labels = {
  executionId: 'io.paddock.execution-id',
  owner: 'io.paddock.owner',
  brokerId: 'io.paddock.broker-id',
  deadlineMs: 'io.paddock.deadline-ms',
  /** The workspace's disk limit, 0 for none: what a broker that adopts the instance reports if it is met. */
  diskBytes: 'io.paddock.disk-bytes',
} as const;
