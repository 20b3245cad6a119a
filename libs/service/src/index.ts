export { runService, type RunServiceOptions, type ServiceProcess } from './runService.js';
export { describeHealth, StartAbortedError, waitFor, type ServiceHealth, type Startup, type StartupTiming } from './startup.js';
