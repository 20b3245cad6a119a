/** Labels on every container Paddock creates: after a crash the broker finds what is its own by these. */
export const labels = {
  executionId: 'io.paddock.execution-id',
  owner: 'io.paddock.owner',
  brokerId: 'io.paddock.broker-id',
  deadlineMs: 'io.paddock.deadline-ms',
} as const;
