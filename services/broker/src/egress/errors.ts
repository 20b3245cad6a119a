/** How the egress allowlist fails. */

/** An entry of a request's `egress` is not `host`, `host:port` or `*.domain[:port]`. */
export class EgressRuleError extends Error {
  constructor(
    readonly entry: string,
    reason: string,
  ) {
    super(`egress entry "${entry}" ${reason}: write "host", "host:port" or "*.domain" (its subdomains), e.g. "pypi.org", "github.com:443", "*.npmjs.org"`);
    this.name = 'EgressRuleError';
  }
}
