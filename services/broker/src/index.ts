export { brokerConfig, type BrokerConfig } from './config.js';
export { startBroker, type StartedBroker } from './broker.js';
