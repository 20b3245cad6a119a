import { channelCredentials, channelOptions, loadServiceTls, tlsFilesFromEnv, type PlaneService } from '@paddock/plane';
import { BrokerClient } from '@paddock/proto';

/**
 * A client of the broker at `address` as `service` makes one in production: with that service's certificate
 * from the plane in env's PADDOCK_HOME.
 */
export async function brokerClientAs(service: PlaneService, address: string, env: Record<string, string>): Promise<BrokerClient> {
  const tls = await loadServiceTls(tlsFilesFromEnv({ PADDOCK_HOME: env['PADDOCK_HOME'] }, service));
  return new BrokerClient(address, channelCredentials(tls, 'broker'), channelOptions('broker'));
}
