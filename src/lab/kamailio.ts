/**
 * Start real Kamailio instances side by side: each with its own config, runtime directory (ctl and
 * RPC sockets live there), PID file and listen addresses, in the foreground (-DD) so that SIGTERM to
 * the main process stops its workers.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ManagedProcess, ProcessGroup } from './processes.js';
import { formatEndpoint, isBound, type Endpoint } from './sockets.js';
import { sleep } from '../util/sleep.js';

export type DefineValue = string | number | boolean;
export type Defines = Readonly<Record<string, DefineValue>>;

export interface KamailioOptions {
  readonly name: string;
  readonly cfg: string;
  readonly defines?: Defines;
  /** Sockets that must be bound before the instance counts as started. */
  readonly waitFor: readonly Endpoint[];
  readonly shmMb?: number;
  readonly pkgMb?: number;
  readonly startTimeoutMs?: number;
  readonly binary?: string;
}

export interface KamailioInstance {
  readonly name: string;
  readonly process: ManagedProcess;
  readonly runDir: string;
  readonly endpoints: readonly Endpoint[];
}

/** `-A NAME=VALUE` arguments; `true` defines the bare name, `false` leaves it out. */
export function defineArgs(defines: Defines = {}): string[] {
  const args: string[] = [];
  for (const [name, value] of Object.entries(defines)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`bad define name: ${name}`);
    if (value === false) continue;
    args.push('-A', value === true ? name : `${name}=${String(value)}`);
  }
  return args;
}

export function kamailioBinary(): string {
  return process.env.SIPWEIGH_KAMAILIO ?? 'kamailio';
}

export interface CheckResult {
  readonly ok: boolean;
  readonly output: string;
}

/** `kamailio -c`: parses the config and loads its modules without starting anything. */
export function kamailioCheck(cfg: string, defines: Defines = {}, binary = kamailioBinary()): CheckResult {
  const r = spawnSync(binary, ['-c', '-f', cfg, ...defineArgs(defines)], { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

export async function startKamailio(group: ProcessGroup, opts: KamailioOptions): Promise<KamailioInstance> {
  const runDir = join(group.runDir, opts.name);
  mkdirSync(runDir, { recursive: true });
  const args = [
    '-f',
    opts.cfg,
    '-DD',
    '-E',
    '-Y',
    runDir,
    '-P',
    join(runDir, 'kamailio.pid'),
    '-m',
    String(opts.shmMb ?? 64),
    '-M',
    String(opts.pkgMb ?? 8),
    ...defineArgs(opts.defines),
  ];
  const proc = group.spawn(opts.name, opts.binary ?? kamailioBinary(), args);
  const deadline = Date.now() + (opts.startTimeoutMs ?? 15000);
  for (;;) {
    if (!proc.isRunning()) {
      throw new Error(`kamailio ${opts.name} exited during start-up:\n${proc.tail(30)}`);
    }
    const bound = await Promise.all(opts.waitFor.map(isBound));
    if (bound.every(Boolean)) break;
    if (Date.now() > deadline) {
      await proc.stop();
      const missing = opts.waitFor.filter((_, i) => !bound[i]).map(formatEndpoint);
      throw new Error(`kamailio ${opts.name} did not bind ${missing.join(', ')} in time:\n${proc.tail(30)}`);
    }
    await sleep(50);
  }
  return { name: opts.name, process: proc, runDir, endpoints: opts.waitFor };
}
