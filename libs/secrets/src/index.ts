export { SecretBox } from './secretBox.js';
export { SecretKeyError } from './secretKeyError.js';
export { SharedKey } from './sharedKey.js';
export { SpecKey } from './specKey.js';
export { LlmKey } from './llmKey.js';
export { sealSpec, unsealSpec } from './sealedSpec.js';
