import { billing } from './figures/billing.js';
import { burst } from './figures/burst.js';
import { cold } from './figures/cold.js';
import { ingress } from './figures/ingress.js';
import { llmProxy } from './figures/llmProxy.js';
import { memory } from './figures/memory.js';
import { ports } from './figures/ports.js';
import { raw } from './figures/raw.js';
import { terminal } from './figures/terminal.js';
import { xds } from './figures/xds.js';
import type { Section } from './section.js';

/**
 * Every section of the benchmark, in the order they run. raw comes first because Paddock's figures are
 * compared with its figures; memory reads idle RSS once raw and cold have warmed Paddock up (and before
 * terminal loads the gateway's SSH client); terminal brings its own baseline; ports measures listen() to
 * event and to URL, then portdetect's CPU; ingress brings its own baseline (the relay it is built on); xds
 * runs a control plane in the bench's own process, while Paddock idles, and billing likewise runs billing on a
 * database and nats-server of its own; llmProxy times the metering proxy against the stand-in provider
 * called directly; burst ends the run because it
 * leaves Paddock the busiest. A new section is a module in figures/ added here.
 */
export const SECTIONS: readonly Section[] = [raw, cold, memory, terminal, ports, ingress, xds, billing, llmProxy, burst];
