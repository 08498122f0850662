/**
 * Fault injection on a running lab, for the end-to-end tests, the demo and the benchmarks: kill a
 * member the way a crash does (SIGKILL of its whole process group), freeze it (SIGSTOP: a partition
 * as the controller sees it), and start it again with exactly the command it first ran with.
 */
import type { RunningLab } from './lab.js';
import { signalGroup, type ManagedProcess } from './processes.js';
import { isBound, type Endpoint } from './sockets.js';
import { sleep } from '../util/sleep.js';

/** The newest process of that name (a respawned member replaces the killed one). */
export function labProcess(lab: RunningLab, name: string): ManagedProcess {
  const all = lab.group.processes.filter((p) => p.name === name);
  const p = all[all.length - 1];
  if (!p) throw new Error(`no lab member named ${name}`);
  return p;
}

/** SIGKILL of the member's process group (Kamailio's workers die with it); resolves once it exited. */
export async function killMember(lab: RunningLab, name: string): Promise<number> {
  const p = labProcess(lab, name);
  const at = Date.now();
  signalGroup(p.pid, 'SIGKILL');
  await p.exited;
  return at;
}

export function freezeMember(lab: RunningLab, name: string, frozen: boolean): void {
  signalGroup(labProcess(lab, name).pid, frozen ? 'SIGSTOP' : 'SIGCONT');
}

/** Starts a killed member again with its original command and waits for its sockets. */
export async function respawnMember(
  lab: RunningLab,
  name: string,
  timeoutMs = 20000,
): Promise<ManagedProcess> {
  const old = labProcess(lab, name);
  if (old.isRunning()) throw new Error(`${name} is still running (pid ${old.pid})`);
  const [cmd, ...args] = old.command;
  if (cmd === undefined) throw new Error(`${name} has no command`);
  const p = lab.group.spawn(name, cmd, args);
  const endpoints: readonly Endpoint[] = lab.state.members.find((m) => m.name === name)?.endpoints ?? [];
  const deadline = Date.now() + timeoutMs;
  for (const ep of endpoints) {
    while (!(await isBound(ep))) {
      if (!p.isRunning()) throw new Error(`${name} exited during restart:\n${p.tail(20)}`);
      if (Date.now() > deadline) throw new Error(`${name} did not bind ${ep.address}:${ep.port} in time`);
      await sleep(50);
    }
  }
  return p;
}
