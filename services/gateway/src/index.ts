export { gatewayConfig, type GatewayConfig } from './config.js';
export { startGateway, type StartedGateway } from './gateway.js';
export { buildApp, type AppOptions } from './app.js';
