import type { PeerCertificate } from 'node:tls';
import { serviceOfAltNames, type PlaneService } from './planeServices.js';

/** What a gRPC server call (or a server interceptor's call) knows of its connection. */
export interface HasAuthContext {
  getAuthContext(): { readonly sslPeerCertificate?: PeerCertificate } | null;
}

/**
 * The service that makes a call, by the SPIFFE URI of the certificate it showed; undefined without a
 * certificate or with one that names no Paddock service. The server's credentials (serverCredentials)
 * already refused any certificate not issued by the plane's CA, so the name can be trusted.
 */
export function callerOf(call: HasAuthContext): PlaneService | undefined {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  return cert ? serviceOfAltNames(cert.subjectaltname) : undefined;
}

/**
 * The identity of the peer of a TLS connection (a server's socket after the handshake), by the SPIFFE URI
 * of the certificate it showed; undefined without one or with one that names no identity of the plane. The
 * server's options (tlsServerOptions) already refused certificates the plane's CA did not issue.
 */
export function peerServiceOf(socket: { getPeerCertificate(): PeerCertificate | Record<string, never> }): PlaneService | undefined {
  const cert = socket.getPeerCertificate();
  return 'subjectaltname' in cert ? serviceOfAltNames(cert.subjectaltname) : undefined;
}
