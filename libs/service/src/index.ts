export { runService, type RunServiceOptions } from './runService.js';
