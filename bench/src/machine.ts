import { cpus, release, totalmem } from 'node:os';
import type Docker from 'dockerode';

/** The machine a run was measured on: figures from different machines are not comparable. */
export interface MachineInfo {
  readonly cpus: number;
  readonly cpuModel: string;
  readonly memoryGb: number;
  readonly kernel: string;
  readonly node: string;
  /** The Docker engine's version. */
  readonly docker: string;
  /** When the run started, ISO 8601. */
  readonly date: string;
}

export async function machineInfo(docker: Docker, date = new Date()): Promise<MachineInfo> {
  const cores = cpus();
  return {
    cpus: cores.length,
    cpuModel: cores[0]?.model.trim() ?? 'unknown',
    memoryGb: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
    kernel: release(),
    node: process.version,
    docker: (await docker.version()).Version,
    date: date.toISOString(),
  };
}
