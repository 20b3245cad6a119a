export { SecretBox, SecretKeyError } from './secretBox.js';
export { sealSpec, unsealSpec } from './sealedSpec.js';
