export { SecretBox } from './secretBox.js';
export { SecretKeyError } from './secretKeyError.js';
export { SpecKey } from './specKey.js';
export { sealSpec, unsealSpec } from './sealedSpec.js';
