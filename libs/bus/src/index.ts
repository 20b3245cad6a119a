export {
  Bus,
  isBusUnavailable,
  isNotFound,
  retryDelayMs,
  type BusObserver,
  type BusOptions,
  type BusStats,
  type ConsumeOptions,
  type ConsumerStats,
  type Delivery,
  type Subscription,
} from './bus.js';
export {
  busSettingsFromEnv,
  compileBusConfig,
  streamSetting,
  DEFAULT_DEADLETTER_RETENTION_DAYS,
  DEFAULT_MAX_DELIVER,
  DEFAULT_RETENTION_DAYS,
  type BusConfig,
  type BusSettings,
  type StreamLimits,
} from './busConfig.js';
export { DeadLetterHeader, type DeadLetter } from './deadLetter.js';
export { natsAuth } from './natsAuth.js';
export { NatsAuthError, NatsPermissionError } from './natsErrors.js';
export { ensureNatsIdentity, natsKeyOf, NatsIdentityError, readNatsKey, type NatsIdentity, type NatsKey } from './natsIdentity.js';
export {
  checkOwnership,
  durableConsumers,
  inboxPrefix,
  isNatsUser,
  natsPermissions,
  NATS_USERS,
  type DurableConsumer,
  type NatsPermissions,
  type NatsUser,
} from './natsPermissions.js';
export { natsServerConfig, type NatsServerConfigOptions } from './natsServerConfig.js';
export {
  topics,
  streams,
  streamOf,
  subjectId,
  deadLetters,
  DAY_MS,
  SERVICES,
  type ServiceName,
  type Topic,
  type TopicOwners,
  type StreamName,
  type StreamSpec,
} from './subjects.js';
