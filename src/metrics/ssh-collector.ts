/**
 * Agentless backends: the same figures an agent reports, read over one kept-open SSH connection.
 *
 * - Host figures (CPU, memory, load, the SIP UDP socket's queue and drops) come from one command that
 *   prints /proc/stat, /proc/meminfo, /proc/loadavg, /proc/net/udp and /proc/net/udp6 between markers
 *   (sections.ts), parsed by the agent's own parsers.
 * - Kamailio figures, where configured, come from `kamcmd` (tm.stats, dlg.stats_active, stats.fetchn)
 *   in the same command, turned into the same measurements as the agent's JSON-RPC path.
 * Commands go to one long-lived shell on the connection (util/remote-shell.ts), not an exec each.
 * - OPTIONS round trip is not measured here (it would time the network, not the host): it stays null.
 * Each section fails alone, and a lost connection nulls everything until the session reconnects.
 */
import { CpuTracker } from './cpu-tracker.js';
import { KamailioRateTracker } from './kamailio-rate-tracker.js';
import { kamailioMeasurements } from './kamailio-collector.js';
import { FETCHN_GROUPS } from './kamailio-stats.js';
import { parseKamcmdStruct } from './kamcmd-output.js';
import { parseLoadavg } from './loadavg.js';
import { memUsedRatio, parseMeminfo } from './meminfo.js';
import { findUdpSocket, parseProcNetUdp, type Endianness, type UdpSocketRow } from './proc-net-udp.js';
import { parseProcStat } from './proc-stat.js';
import { buildSectionedCommand, parseSections, type SectionCommand, type SectionResult } from './sections.js';
import type { SshSession, SshTarget } from '../util/ssh-session.js';
import type { PartialMeasurements } from './types.js';

export interface KamcmdOptions {
  /** kamcmd binary on the host (default `kamcmd`, found through the login PATH). */
  readonly command?: string;
  /** Control socket, e.g. `unix:/run/kamailio/kamailio_ctl` (default: kamcmd's own default). */
  readonly socket?: string;
}

export interface SshCollectorOptions {
  readonly ssh: SshTarget;
  readonly kamcmd?: KamcmdOptions;
  /** Kamailio's SIP UDP socket on the host; without an address every socket on the port counts. */
  readonly sipSocket?: { readonly address?: string; readonly port: number };
  /** How the host prints /proc/net addresses (default little-endian, as on x86 and most ARM). */
  readonly endianness?: Endianness;
}

const HOST_SECTIONS = [
  { name: 'stat', command: 'cat /proc/stat' },
  { name: 'meminfo', command: 'cat /proc/meminfo' },
  { name: 'loadavg', command: 'cat /proc/loadavg' },
  { name: 'udp', command: 'cat /proc/net/udp' },
  { name: 'udp6', command: 'cat /proc/net/udp6' },
] as const;

/** Single-quotes a word for the remote POSIX shell. */
function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

function sectionText(sections: Map<string, SectionResult>, name: string): string {
  const s = sections.get(name);
  if (!s) throw new Error(`${name}: missing from the output`);
  if (!s.ok) throw new Error(`${name}: exit ${s.status}: ${s.output.trim().slice(0, 200)}`);
  return s.output;
}

/**
 * Whether the host has a UDP socket where its SIP server listens: 'found', 'absent' (the tables were
 * read and hold none: nothing serves SIP there), 'unknown' (the tables could not be read) or
 * 'unchecked' (no socket configured).
 */
export type SipSocketFinding = 'found' | 'absent' | 'unknown' | 'unchecked';

/**
 * Pure: the host sections → measurements. `cpu` carries the previous /proc/stat reading across
 * samples (so the first sample has no CPU figure).
 */
export function hostMeasurements(
  sections: Map<string, SectionResult>,
  cpu: CpuTracker,
  socket: SshCollectorOptions['sipSocket'],
  endianness: Endianness = 'LE',
): { values: PartialMeasurements; problems: string[]; sipSocket: SipSocketFinding } {
  const values: PartialMeasurements = {};
  const problems: string[] = [];
  let sipSocket: SipSocketFinding = 'unchecked';
  const attempt = (what: string, f: () => void) => {
    try {
      f();
    } catch (e) {
      problems.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  attempt('cpu', () => {
    const u = cpu.update(parseProcStat(sectionText(sections, 'stat')));
    if (u === null) throw new Error('first reading (a delta needs two)');
    values.cpu_util = u;
  });
  attempt(
    'memory',
    () => (values.mem_used_ratio = memUsedRatio(parseMeminfo(sectionText(sections, 'meminfo')))),
  );
  attempt('load', () => (values.load1 = parseLoadavg(sectionText(sections, 'loadavg')).load1));
  if (socket) {
    sipSocket = 'unknown';
    attempt('udp socket', () => {
      const rows: UdpSocketRow[] = parseProcNetUdp(sectionText(sections, 'udp'), '/proc/net/udp', endianness);
      // udp6 is absent on hosts without IPv6; the IPv4 table alone is then the whole truth.
      const v6 = sections.get('udp6');
      if (v6?.ok) rows.push(...parseProcNetUdp(v6.output, '/proc/net/udp6', endianness));
      const found = findUdpSocket(rows, socket.address, socket.port);
      if (!found) {
        sipSocket = 'absent';
        throw new Error(`no UDP socket bound to ${socket.address ?? '*'}:${socket.port}`);
      }
      sipSocket = 'found';
      values.udp_rx_queue_bytes = found.rxQueueBytes;
      values.udp_drops = found.drops;
    });
  }
  return { values, problems, sipSocket };
}

/** The three kamcmd calls, as sections of one remote command. */
function kamcmdSections(kamcmd: KamcmdOptions): SectionCommand[] {
  const base = [kamcmd.command ?? 'kamcmd', ...(kamcmd.socket ? ['-s', kamcmd.socket] : [])]
    .map(shellQuote)
    .join(' ');
  return [
    { name: 'tm', command: `${base} tm.stats` },
    { name: 'dlg', command: `${base} dlg.stats_active` },
    { name: 'fetchn', command: `${base} stats.fetchn ${FETCHN_GROUPS.map(shellQuote).join(' ')}` },
  ];
}

/**
 * Pure: the kamcmd sections → measurements; `answered` is false when not one of the three calls got
 * a reply (Kamailio is not running, or its control socket is elsewhere).
 */
export function kamcmdMeasurements(
  sections: Map<string, SectionResult>,
  rates: KamailioRateTracker,
  atMs: number,
): { values: PartialMeasurements; problems: string[]; answered: boolean } {
  const settle = (name: string, rpc: string): PromiseSettledResult<unknown> => {
    try {
      return { status: 'fulfilled', value: parseKamcmdStruct(sectionText(sections, name), rpc) };
    } catch (e) {
      return { status: 'rejected', reason: e };
    }
  };
  const replies = {
    tmStats: settle('tm', 'tm.stats'),
    dlgStats: settle('dlg', 'dlg.stats_active'),
    fetchn: settle('fetchn', 'stats.fetchn'),
  };
  const answered = Object.values(replies).some((r) => r.status === 'fulfilled');
  return { ...kamailioMeasurements(replies, rates, atMs), answered };
}

/** One agentless measurement: every figure of the backend from one round trip. */
export interface AgentlessSample {
  readonly values: PartialMeasurements;
  /** Why some figures are missing (first CPU reading, a section that failed). */
  readonly problems: readonly string[];
  readonly sipSocket: SipSocketFinding;
  /** 'off' without kamcmd; 'silent' when no kamcmd call got a reply. */
  readonly kamailio: 'answered' | 'silent' | 'off';
}

/**
 * The agentless probe's collection: the host figures and, with kamcmd, Kamailio's, in ONE remote
 * command per probe, so its round trip is one sample of how the backend answers and every figure of
 * a report is from the same instant. The CPU and rate trackers carry state across probes; a failed
 * probe resets them (a delta must not span a gap we did not see).
 */
export class SshProbeCollection {
  private readonly cpu = new CpuTracker();
  private readonly rates = new KamailioRateTracker();
  private readonly command: string;

  constructor(
    private readonly session: SshSession,
    private readonly options: Pick<SshCollectorOptions, 'kamcmd' | 'sipSocket' | 'endianness'>,
  ) {
    this.command = buildSectionedCommand([
      ...HOST_SECTIONS,
      ...(options.kamcmd ? kamcmdSections(options.kamcmd) : []),
    ]);
  }

  /** Runs the probe's command; rejects on an SSH failure (not connected, overrun, shell lost). */
  async collect(deadlineMs: number, signal?: AbortSignal): Promise<AgentlessSample> {
    let output;
    try {
      output = await this.session.run(this.command, deadlineMs, signal);
    } catch (e) {
      this.cpu.reset();
      this.rates.reset();
      throw e;
    }
    const sections = parseSections(output);
    const host = hostMeasurements(sections, this.cpu, this.options.sipSocket, this.options.endianness);
    if (!this.options.kamcmd) return { ...host, kamailio: 'off' };
    const kam = kamcmdMeasurements(sections, this.rates, performance.now());
    return {
      values: { ...host.values, ...kam.values },
      problems: [...host.problems, ...kam.problems],
      sipSocket: host.sipSocket,
      kamailio: kam.answered ? 'answered' : 'silent',
    };
  }
}
