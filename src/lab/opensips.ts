/**
 * The OpenSIPS LB of the lab (`sipweigh lab up --lb opensips`) and of the OpenSIPS data-plane tests:
 * renders opensips/lab-lb.cfg (OpenSIPS has no -A defines: placeholders are replaced here), writes
 * its db_text dispatcher table and its generated destinations route, and starts OpenSIPS in the
 * foreground in its own process group (stopped by PID with its workers).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Destination } from '../kamailio/dispatcher-list.js';
import {
  destinationUris,
  formatDestinationsRoute,
  formatDispatcherTable,
  formatVersionTable,
} from '../opensips/dispatcher-table.js';
import { PACKAGE_ROOT } from '../util/package-root.js';
import { OPENSIPS_36_BINARY } from './platforms.js';
import type { ManagedProcess, ProcessGroup } from './processes.js';
import { formatEndpoint, isBound, type Endpoint } from './sockets.js';
import { sleep } from '../util/sleep.js';

/** Which SIP server the lab runs as its LB. */
export type LbKind = 'kamailio' | 'opensips';
export const LB_KINDS: readonly LbKind[] = ['kamailio', 'opensips'];

export const OPENSIPS_CFG_DIR = join(PACKAGE_ROOT, 'opensips');
export const OPENSIPS_SNIPPET = join(OPENSIPS_CFG_DIR, 'sipweigh-lb.cfg');
export const OPENSIPS_LAB_TEMPLATE = join(OPENSIPS_CFG_DIR, 'lab-lb.cfg');

/** The prefix scripts/third-party.sh builds OpenSIPS 3.6.8 into (docs/platforms.md). */
export const OPENSIPS_PREFIX = dirname(dirname(OPENSIPS_36_BINARY));

export function opensipsBinary(): string {
  return process.env.SIPWEIGH_OPENSIPS ?? join(OPENSIPS_PREFIX, 'sbin', 'opensips');
}

/** The modules directory beside the binary (`<prefix>/sbin/opensips` -> `<prefix>/lib64/opensips/modules`). */
export function opensipsModulesDir(binary = opensipsBinary()): string {
  return join(dirname(dirname(binary)), 'lib64', 'opensips', 'modules');
}

/** True when the OpenSIPS binary runs (tests skip themselves otherwise, naming the prefix). */
export function opensipsAvailable(binary = opensipsBinary()): boolean {
  if (!existsSync(binary)) return false;
  return spawnSync(binary, ['-V'], { encoding: 'utf8' }).status === 0;
}

export interface OpenSipsLbSettings {
  readonly sip: { readonly address: string; readonly port: number };
  /** Management address of MI over HTTP (httpd binds it alone). */
  readonly mi: { readonly address: string; readonly port: number };
  readonly workers?: number;
}

export interface OpenSipsLbFiles {
  /** The rendered config OpenSIPS starts on. */
  readonly cfg: string;
  /** db_text directory: `version` and `dispatcher`. */
  readonly dbDir: string;
  /** The dispatcher table file (what the controller's dispatcher_list.path names). */
  readonly table: string;
  /** The generated route[SIPWEIGH_SEND_TO]. */
  readonly destinations: string;
  readonly fifo: string;
  readonly miUrl: string;
}

function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

/** opensips/lab-lb.cfg with every @NAME@ replaced (pure); throws on a placeholder left unset. */
export function renderOpenSipsLbCfg(
  template: string,
  values: Readonly<Record<string, string | number>>,
): string {
  const out = template.replace(/@([A-Z_]+)@/g, (whole, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`opensips lab config: no value for ${whole}`);
    const s = String(v);
    if (/["\n]/.test(s)) throw new Error(`opensips lab config: ${name} must not contain quotes or newlines`);
    return s;
  });
  return out;
}

/** Where the LB's files go under `dir` (pure): the lab's controller config names them before the start. */
export function openSipsLbFilesAt(dir: string, settings: OpenSipsLbSettings): OpenSipsLbFiles {
  const dbDir = join(dir, 'db');
  return {
    cfg: join(dir, 'opensips-lb.cfg'),
    dbDir,
    table: join(dbDir, 'dispatcher'),
    destinations: join(dir, 'sipweigh-destinations.cfg'),
    fifo: join(dir, 'opensips_fifo'),
    miUrl: `http://${settings.mi.address}:${settings.mi.port}/mi`,
  };
}

/** Writes the LB's config, table and destinations route under `dir` (created). */
export function writeOpenSipsLbFiles(
  dir: string,
  settings: OpenSipsLbSettings,
  destinations: readonly Destination[],
  binary = opensipsBinary(),
  literalSends = true,
): OpenSipsLbFiles {
  const files = openSipsLbFilesAt(dir, settings);
  const dbDir = files.dbDir;
  mkdirSync(dbDir, { recursive: true });
  writeAtomically(join(dbDir, 'version'), formatVersionTable());
  writeAtomically(files.table, formatDispatcherTable(destinations));
  writeAtomically(
    files.destinations,
    formatDestinationsRoute(literalSends ? destinationUris(destinations) : []),
  );
  const cfg = renderOpenSipsLbCfg(readFileSync(OPENSIPS_LAB_TEMPLATE, 'utf8'), {
    SW_LB_IP: settings.sip.address,
    SW_LB_PORT: settings.sip.port,
    SW_MI_IP: settings.mi.address,
    SW_MI_PORT: settings.mi.port,
    SW_WORKERS: settings.workers ?? 4,
    SW_MPATH: `${opensipsModulesDir(binary)}/`,
    SW_DB_DIR: dbDir,
    SW_FIFO: files.fifo,
    SW_SNIPPET: OPENSIPS_SNIPPET,
    SW_DESTINATIONS: files.destinations,
  });
  writeAtomically(files.cfg, cfg);
  return files;
}

export interface CheckResult {
  readonly ok: boolean;
  readonly output: string;
}

/** `opensips -C`: parses the config and loads its modules without starting anything. */
export function openSipsCheck(cfg: string, binary = opensipsBinary()): CheckResult {
  const r = spawnSync(binary, ['-C', '-f', cfg], { encoding: 'utf8' });
  return { ok: r.status === 0, output: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

export interface OpenSipsInstance {
  readonly name: string;
  readonly process: ManagedProcess;
  readonly files: OpenSipsLbFiles;
  readonly endpoints: readonly Endpoint[];
}

export interface StartOpenSipsLbOptions {
  readonly name?: string;
  readonly settings: OpenSipsLbSettings;
  readonly destinations: readonly Destination[];
  readonly shmMb?: number;
  readonly pkgMb?: number;
  readonly startTimeoutMs?: number;
  /**
   * false: an empty destinations route, so every send() takes the per-call (leaking) form. Only for
   * the RSS measurement's comparison (scripts/opensips-rss.ts).
   */
  readonly literalSends?: boolean;
}

export async function startOpenSipsLb(
  group: ProcessGroup,
  opts: StartOpenSipsLbOptions,
): Promise<OpenSipsInstance> {
  const name = opts.name ?? 'lb';
  const runDir = join(group.runDir, name);
  mkdirSync(runDir, { recursive: true });
  const binary = opensipsBinary();
  const files = writeOpenSipsLbFiles(
    runDir,
    opts.settings,
    opts.destinations,
    binary,
    opts.literalSends ?? true,
  );
  const args = [
    '-F',
    '-f',
    files.cfg,
    '-P',
    join(runDir, 'opensips.pid'),
    '-m',
    String(opts.shmMb ?? 64),
    '-M',
    String(opts.pkgMb ?? 8),
  ];
  const proc = group.spawn(name, binary, args);
  const s = opts.settings;
  const endpoints: Endpoint[] = [
    { transport: 'udp', address: s.sip.address, port: s.sip.port },
    { transport: 'tcp', address: s.sip.address, port: s.sip.port },
    { transport: 'tcp', address: s.mi.address, port: s.mi.port },
  ];
  const deadline = Date.now() + (opts.startTimeoutMs ?? 15000);
  for (;;) {
    if (!proc.isRunning()) throw new Error(`opensips ${name} exited during start-up:\n${proc.tail(30)}`);
    const bound = await Promise.all(endpoints.map(isBound));
    if (bound.every(Boolean)) break;
    if (Date.now() > deadline) {
      await proc.stop();
      const missing = endpoints.filter((_, i) => !bound[i]).map(formatEndpoint);
      throw new Error(`opensips ${name} did not bind ${missing.join(', ')} in time:\n${proc.tail(30)}`);
    }
    await sleep(50);
  }
  return { name, process: proc, files, endpoints };
}
