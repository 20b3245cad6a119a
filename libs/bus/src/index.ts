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
export { topics, streams, streamOf, subjectId, deadLetters, DAY_MS, type Topic, type StreamName, type StreamSpec } from './subjects.js';
