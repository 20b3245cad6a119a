export { brokerConfig, type BrokerConfig } from './config.js';
export { startBroker, type StartedBroker } from './broker.js';
export { containerSpec, type ContainerSpecInput } from './docker/containerSpec.js';
