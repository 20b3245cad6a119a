import { ConfigError } from '@paddock/errors';

/** What a port's URL is made of, as the gateway's configuration says it. */
export interface PortUrlSettings {
  /** PADDOCK_BASE_DOMAIN: a port's host is `{id}-{port}.{baseDomain}`. */
  readonly baseDomain: string;
  /** PADDOCK_INGRESS_PORT: where the gateway's ingress listens; 0 when it is off. */
  readonly ingressPort: number;
  /**
   * PADDOCK_PUBLIC_INGRESS_URL: where users reach the ingress when that is not the ingress itself (a TLS
   * proxy in front of it: `https://apps.example.com`). Its scheme and port are the URLs'; its host must be
   * the base domain, since that is what the ingress routes by.
   */
  readonly publicIngressUrl?: string | undefined;
}

/** A DNS name of labels (letters, digits, inner hyphens), as the hosts of ports are made under it. */
const DOMAIN = /^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

/**
 * The URL of each port of an instance, `http://{id}-{port}.{BASE_DOMAIN}:{ingress port}/`: where the
 * ingress serves it. With the ingress off and no public URL there is none (null).
 */
export class PortUrls {
  private constructor(
    /** `http:` or `https:`, and `:port` unless it is the scheme's own; null when ports have no URL. */
    private readonly origin: { readonly protocol: string; readonly port: string } | null,
    readonly baseDomain: string,
  ) {}

  /** Checks the settings once (a ConfigError names the variable at fault). */
  static from(settings: PortUrlSettings): PortUrls {
    const baseDomain = settings.baseDomain.toLowerCase();
    if (!DOMAIN.test(baseDomain)) throw new ConfigError('PADDOCK_BASE_DOMAIN', `"${settings.baseDomain}" is not a DNS name (such as localhost or apps.example.com)`);
    if (settings.publicIngressUrl !== undefined) {
      let url: URL;
      try {
        url = new URL(settings.publicIngressUrl);
      } catch {
        throw new ConfigError('PADDOCK_PUBLIC_INGRESS_URL', `"${settings.publicIngressUrl}" is not a URL (such as https://apps.example.com)`);
      }
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('PADDOCK_PUBLIC_INGRESS_URL', `must be an http or https URL, got "${settings.publicIngressUrl}"`);
      if (url.hostname !== baseDomain) {
        throw new ConfigError('PADDOCK_PUBLIC_INGRESS_URL', `its host "${url.hostname}" must be PADDOCK_BASE_DOMAIN ("${baseDomain}"): ports are served at {id}-{port}.${baseDomain}`);
      }
      if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '' || url.username !== '') {
        throw new ConfigError('PADDOCK_PUBLIC_INGRESS_URL', `must be a scheme, a host and a port only, got "${settings.publicIngressUrl}"`);
      }
      // URL leaves the port empty when it is the scheme's default.
      return new PortUrls({ protocol: url.protocol, port: url.port === '' ? '' : `:${url.port}` }, baseDomain);
    }
    if (!Number.isInteger(settings.ingressPort) || settings.ingressPort < 0 || settings.ingressPort > 65535) {
      throw new ConfigError('PADDOCK_INGRESS_PORT', `expected a port in [0, 65535], got ${settings.ingressPort}`);
    }
    if (settings.ingressPort === 0) return new PortUrls(null, baseDomain);
    return new PortUrls({ protocol: 'http:', port: settings.ingressPort === 80 ? '' : `:${settings.ingressPort}` }, baseDomain);
  }

  /** The host of a port of an instance. */
  host(instanceId: string, port: number): string {
    return `${instanceId}-${port}.${this.baseDomain}`;
  }

  /** The URL of a port of an instance, or null when the ingress is off. */
  of(instanceId: string, port: number): string | null {
    return this.origin ? `${this.origin.protocol}//${this.host(instanceId, port)}${this.origin.port}/` : null;
  }
}
