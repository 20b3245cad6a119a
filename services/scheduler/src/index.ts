export { schedulerConfig, type SchedulerConfig } from './config.js';
export { startScheduler, finalOf, type StartedScheduler } from './scheduler.js';
