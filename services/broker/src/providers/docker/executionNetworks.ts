import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { promisify } from 'node:util';
import type Docker from 'dockerode';
import { labels } from './labels.js';

const run = promisify(execFile);

/**
 * Linux names every bridge of Paddock's execution networks `pdk…`, so that one firewall rule per chain
 * (`-i pdk+`) covers all of them, however many come and go.
 */
export const BRIDGE_PREFIX = 'pdk';
/** Linux interface names have at most 15 characters. */
const BRIDGE_HASH_CHARS = 15 - BRIDGE_PREFIX.length;
const INPUT_CHAIN = 'PADDOCK-INPUT';
/** Docker's chain for its users' rules, consulted by FORWARD before any of Docker's own. */
const DOCKER_USER_CHAIN = 'DOCKER-USER';
const IPTABLES_TIMEOUT_MS = 10_000;

/** The Docker network of one bridged execution. */
export function executionNetworkName(executionId: string): string {
  return `paddock-${executionId}`;
}

/** The Linux bridge behind an execution's network: stable for the id, unique in practice. */
export function bridgeName(executionId: string): string {
  return BRIDGE_PREFIX + createHash('sha256').update(executionId).digest('hex').slice(0, BRIDGE_HASH_CHARS);
}

/** The host's firewall could not be set up, so a bridged instance would reach the host: none is created. */
export class HostFirewallError extends Error {
  constructor(
    readonly detail: string,
    options?: ErrorOptions,
  ) {
    super(
      `a bridged execution needs the broker to shut its network off from the host and from other executions (iptables on the Docker engine's host), and that failed: ${detail}. Run the broker as root on the engine's host, or ask for network "none"`,
      options,
    );
    this.name = 'HostFirewallError';
  }
}

type Family = 'iptables' | 'ip6tables';

interface Rule {
  readonly family: Family;
  readonly chain: string;
  readonly spec: readonly string[];
  /** Appended rules stay last (the chain's final DROP); the rest go first. */
  readonly placement: 'first' | 'last';
}

export interface HostFirewallOptions {
  /**
   * TCP ports of the host that bridged instances may still open (a model server on the host such as
   * Ollama, reached as host.docker.internal). Nothing else of the host answers them.
   */
  readonly hostTcpPortsOpen: readonly number[];
}

/**
 * What keeps a bridged instance off the host and off other executions. Paddock's services listen on
 * 127.0.0.1, which no bridge reaches, but anything of the host bound to 0.0.0.0 answers on each bridge's
 * gateway address: INPUT sends whatever comes in from a Paddock bridge to PADDOCK-INPUT, which lets
 * through only replies and the ports allowed, and drops the rest. Between executions, each network has
 * inter-container traffic off and Docker's isolation chains keep networks apart; DOCKER-USER drops
 * Paddock-to-Paddock forwarding too, so that holds whatever Docker's own chains become. Outbound traffic to
 * anywhere else (the internet) is forwarded as Docker forwards any bridge's: `network: "bridge"` is open.
 *
 * Rules are added only when missing (checked one by one), never flushed: several brokers of one host add
 * the same rules, and a port one of them allows stays allowed until the host restarts or an operator
 * removes the rule.
 */
export class HostFirewall {
  #installed: Promise<void> | undefined;

  constructor(private readonly opts: HostFirewallOptions) {}

  /** The rules every Paddock bridge is under; each is added once, when missing. */
  rules(): Rule[] {
    const rules: Rule[] = [];
    for (const family of ['iptables', 'ip6tables'] as const) {
      rules.push({ family, chain: INPUT_CHAIN, spec: ['-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'RETURN'], placement: 'first' });
      for (const port of this.opts.hostTcpPortsOpen) {
        rules.push({ family, chain: INPUT_CHAIN, spec: ['-p', 'tcp', '--dport', String(port), '-j', 'RETURN'], placement: 'first' });
      }
      rules.push({ family, chain: INPUT_CHAIN, spec: ['-j', 'DROP'], placement: 'last' });
      rules.push({ family, chain: 'INPUT', spec: ['-i', `${BRIDGE_PREFIX}+`, '-j', INPUT_CHAIN], placement: 'first' });
    }
    // Docker routes IPv4 only for networks that do not enable IPv6, as Paddock's do not.
    rules.push({ family: 'iptables', chain: DOCKER_USER_CHAIN, spec: ['-i', `${BRIDGE_PREFIX}+`, '-o', `${BRIDGE_PREFIX}+`, '-j', 'DROP'], placement: 'first' });
    return rules;
  }

  /** Installs the rules once per process; a failure is retried by the next call. */
  ensure(): Promise<void> {
    this.#installed ??= this.install().catch((err: unknown) => {
      this.#installed = undefined;
      throw err instanceof HostFirewallError ? err : new HostFirewallError((err as Error).message, { cause: err });
    });
    return this.#installed;
  }

  private async install(): Promise<void> {
    for (const family of ['iptables', 'ip6tables'] as const) {
      try {
        await iptables(family, ['-N', INPUT_CHAIN]);
      } catch (err) {
        if (!/exists/i.test(stderrOf(err))) throw new HostFirewallError(`${family} -N ${INPUT_CHAIN}: ${stderrOf(err) || (err as Error).message}`, { cause: err });
      }
    }
    for (const rule of this.rules()) {
      if (await ruleExists(rule)) continue;
      const args = rule.placement === 'first' ? ['-I', rule.chain, '1', ...rule.spec] : ['-A', rule.chain, ...rule.spec];
      try {
        await iptables(rule.family, args);
      } catch (err) {
        throw new HostFirewallError(`${rule.family} ${args.join(' ')}: ${stderrOf(err) || (err as Error).message}`, { cause: err });
      }
    }
  }
}

function iptables(family: Family, args: readonly string[]): Promise<unknown> {
  // -w: wait for the xtables lock that Docker and other brokers take too.
  return run(family, ['-w', '5', ...args], { timeout: IPTABLES_TIMEOUT_MS });
}

async function ruleExists(rule: Rule): Promise<boolean> {
  try {
    await iptables(rule.family, ['-C', rule.chain, ...rule.spec]);
    return true;
  } catch (err) {
    // -C answers 1 for a missing rule; anything else (not root, no such command) is the install's to report.
    if ((err as { code?: unknown }).code === 1) return false;
    throw new HostFirewallError(`${rule.family} -C ${rule.chain} ${rule.spec.join(' ')}: ${stderrOf(err) || (err as Error).message}`, { cause: err });
  }
}

function stderrOf(err: unknown): string {
  return String((err as { stderr?: unknown }).stderr ?? '').trim();
}

export interface NetworkLabels {
  readonly executionId: string;
  readonly ownerId: string;
  readonly brokerId: string;
}

function statusOf(err: unknown): number | undefined {
  return (err as { statusCode?: number })?.statusCode;
}

/**
 * One Docker bridge network per bridged execution, labelled like its container: no other execution's
 * container is on it, inter-container traffic is off, and the host firewall (HostFirewall) keeps it off
 * the host. Created before the container, removed after it; found by label after a crash.
 */
export class ExecutionNetworks {
  constructor(
    private readonly docker: Docker,
    private readonly firewall: HostFirewall,
  ) {}

  /** Creates the execution's network if it is not there yet (an earlier attempt may have made it). */
  async ensure(owner: NetworkLabels): Promise<string> {
    await this.firewall.ensure();
    const name = executionNetworkName(owner.executionId);
    try {
      await this.docker.createNetwork({
        Name: name,
        Driver: 'bridge',
        CheckDuplicate: true,
        Internal: false,
        EnableIPv6: false,
        Labels: { [labels.executionId]: owner.executionId, [labels.owner]: owner.ownerId, [labels.brokerId]: owner.brokerId },
        Options: {
          'com.docker.network.bridge.name': bridgeName(owner.executionId),
          'com.docker.network.bridge.enable_icc': 'false',
        },
      });
    } catch (err) {
      // 409: made by an earlier attempt at this execution; it is the same network.
      if (statusOf(err) !== 409) throw err;
    }
    return name;
  }

  /** Removes the execution's network; one that is gone already is fine. Its container must be gone first. */
  async remove(executionId: string): Promise<void> {
    try {
      await this.docker.getNetwork(executionNetworkName(executionId)).remove();
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
  }

  /** The executions that still have a network, by label: what a crash may have left. */
  /** The executions of `brokerId` that have a network. */
  async executions(brokerId: string): Promise<string[]> {
    const networks = await this.docker.listNetworks({ filters: { label: [labels.executionId, `${labels.brokerId}=${brokerId}`] } });
    return networks.map((n) => n.Labels?.[labels.executionId] ?? '').filter((id) => id !== '');
  }
}
