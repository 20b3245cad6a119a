export { brokerConfig, type BrokerConfig } from './config.js';
export { startBroker, type StartedBroker } from './broker.js';
export type { Provider } from './provider/provider.js';
export { containerSpec, type ContainerSpecInput } from './providers/docker/containerSpec.js';
