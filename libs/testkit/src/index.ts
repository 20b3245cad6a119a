export { startPaddock, type RunningPaddock, type StartPaddockOptions } from './startPaddock.js';
export { ApiClient, type Execution } from './apiClient.js';
export { freePort } from './freePort.js';
export { startNatsServer, type NatsServer, type NatsAuth, type AuthorizedNatsServer, type NatsUserIdentity } from './natsServer.js';
export {
  startScriptedProvider,
  DEFAULT_USAGE,
  type ScriptedProvider,
  type Step,
  type RecordedRequest,
  type StepUsage,
  type ReportedUsage,
  type ProviderApi,
  type Script,
} from './llmProvider.js';
