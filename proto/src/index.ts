export * from './gen/paddock/v1/billing.js';
export * from './gen/paddock/v1/execution.js';
export * from './gen/paddock/v1/instance.js';
export * from './gen/paddock/v1/port.js';
export * from './gen/paddock/v1/usage.js';
// Both generated files declare these helpers; name the ones this package exports.
export { protobufPackage, protobufFileName, type MessageFns, type DeepPartial, type Exact } from './gen/paddock/v1/execution.js';
