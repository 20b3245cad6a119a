import type { ConnectionOptions, PeerCertificate, TlsOptions } from 'node:tls';
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
 *
 * Reconnection backs off from 250 ms up to 2 s, not grpc's default 120 s: the plane's peers are a few
 * local services that come back within seconds of a restart or a stall, and a channel still waiting out
 * a long backoff after its peer returned would hold up launches, cancels and the reconciler's repairs.
 */
export function channelOptions(expect: PlaneService): ChannelOptions {
  return { 'grpc.ssl_target_name_override': expect, 'grpc.initial_reconnect_backoff_ms': 250, 'grpc.max_reconnect_backoff_ms': 2_000 };
}

/**
 * Options of a Node TLS (or HTTPS) server that, as serverCredentials does for gRPC, speaks TLS only and only
 * to clients with a certificate of the plane's CA. Which identity a client may have is the server's to
 * check (peerServiceOf), once the handshake is done.
 */
export function tlsServerOptions(tls: ServiceTls): TlsOptions {
  return { ca: tls.ca, cert: tls.cert, key: tls.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.2' };
}

/**
 * Options of a Node TLS (or HTTPS) client that shows the identity's certificate and accepts the server only
 * with a certificate of the plane's CA that names `expect`, whatever address it dialled (channelCredentials'
 * rule for gRPC).
 */
export function tlsClientOptions(tls: ServiceTls, expect: PlaneService): ConnectionOptions {
  return {
    ca: tls.ca,
    cert: tls.cert,
    key: tls.key,
    minVersion: 'TLSv1.2',
    // An IP address is no valid SNI; the identity is checked by the certificate's SPIFFE URI below.
    servername: expect,
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      const holder = serviceOfAltNames(cert.subjectaltname);
      if (holder === expect) return undefined;
      return new Error(`expected the ${expect} of this Paddock, but the server showed ${holder === undefined ? 'no Paddock service identity' : `the certificate of ${holder}`}`);
    },
  };
}
