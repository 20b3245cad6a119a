export { startPortdetect, type StartedPortdetect } from './portdetect.js';
export { portdetectConfig, type PortdetectConfig } from './config.js';
export { PortDetector, type PortEventSink, type PortChange, type PortDetectorOptions } from './portDetector.js';
export { DockerInstances, type RunningInstance } from './dockerInstances.js';
export { parseListeners, byPort, type Listener } from './socketTable.js';
