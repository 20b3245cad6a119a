import type { PeerCertificate } from 'node:tls';
import { credentials, ServerCredentials, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';
import { serviceOfAltNames, type PlaneService } from './planeServices.js';
import type { ServiceTls } from './serviceTls.js';

/**
 * A gRPC server that speaks TLS only, and only to clients with a certificate of the plane's CA: a plain
 * connection, or a certificate of any other CA, fails the handshake before any call.
 */
export function serverCredentials(tls: ServiceTls): ServerCredentials {
  return ServerCredentials.createSsl(tls.ca, [{ private_key: tls.key, cert_chain: tls.cert }], true);
}

/**
 * A client that shows the service's own certificate and accepts a server only with a certificate of the
 * plane's CA that names `expect` by its SPIFFE URI. Servers are dialled by the address they announce (a
 * broker's heartbeat names an IP), so which service answers is what is checked, not the host name.
 */
export function channelCredentials(tls: ServiceTls, expect: PlaneService): ChannelCredentials {
  return credentials.createSsl(tls.ca, tls.key, tls.cert, {
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const holder = serviceOfAltNames(cert.subjectaltname);
      if (holder === expect) return undefined;
      return new Error(`expected the ${expect} of this Paddock, but the server showed ${holder === undefined ? 'no Paddock service identity' : `the certificate of ${holder}`}`);
    },
  });
}

/**
 * The channel options that go with channelCredentials: the TLS server name is the service rather than the
 * IP address dialled (an IP address is no valid SNI, and Node warns about it); identity is still checked
 * by the certificate's SPIFFE URI.
 */
export function channelOptions(expect: PlaneService): ChannelOptions {
  return { 'grpc.ssl_target_name_override': expect };
}
