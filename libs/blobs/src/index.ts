export { BlobStore, BlobError } from './blobStore.js';
