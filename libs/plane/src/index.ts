export { PLANE_SERVICES, type PlaneService, isPlaneService, spiffeId, planeDir, specKeyFile, llmKeyFile } from './planeServices.js';
export { ensurePki, defaultPlaneHosts, RENEW_BEFORE_MS, type PkiOptions, type PlaneFiles } from './ensurePki.js';
export { PlaneError } from './planeError.js';
export { loadServiceTls, tlsFilesFromEnv, TLS_SETTINGS, type ServiceTls, type TlsFiles } from './serviceTls.js';
export { serverCredentials, channelCredentials, channelOptions, tlsServerOptions, tlsClientOptions } from './credentials.js';
export { callerOf, peerServiceOf, type HasAuthContext } from './callerOf.js';
export { PeerChannel } from './peerChannel.js';
