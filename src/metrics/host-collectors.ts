/**
 * Collectors of the local host's figures, each reading one /proc file so that each fails alone.
 * The parsers are pure (proc-stat.ts, meminfo.ts, loadavg.ts, proc-net-udp.ts); these are the shells.
 */
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { endianness } from 'node:os';
import { isIPv6 } from 'node:net';
import type { Cadence, Collector } from './collector.js';
import { CpuTracker } from './cpu-tracker.js';
import { parseLoadavg } from './loadavg.js';
import { memUsedRatio, parseMeminfo } from './meminfo.js';
import { parseProcStat } from './proc-stat.js';
import { findUdpSocket, parseProcNetUdp, type UdpSocketFigures } from './proc-net-udp.js';

/** Reads a whole file as text; tests point it at fixtures or a fake /proc root. */
export type TextReader = (path: string) => Promise<string>;

export const readText: TextReader = (path) => readFile(path, 'utf8');

/** Gap between the first two /proc/stat readings (several jiffies at USER_HZ=100). */
const FIRST_DELTA_MS = 250;

export function cpuCollector(cadence: Cadence, read: TextReader = readText): Collector {
  const tracker = new CpuTracker();
  return {
    name: 'cpu',
    fields: ['cpu_util'],
    ...cadence,
    async collect(signal) {
      let cpu_util = tracker.update(parseProcStat(await read('/proc/stat')));
      if (cpu_util === null) {
        // First reading (or the counters went back): take a second one shortly after, so the agent
        // has a CPU figure from its first report on.
        await delay(FIRST_DELTA_MS, undefined, { signal });
        cpu_util = tracker.update(parseProcStat(await read('/proc/stat')));
      }
      return cpu_util === null
        ? { values: {}, problems: ['/proc/stat counters did not advance'] }
        : { values: { cpu_util } };
    },
  };
}

export function memoryCollector(cadence: Cadence, read: TextReader = readText): Collector {
  return {
    name: 'memory',
    fields: ['mem_used_ratio'],
    ...cadence,
    async collect() {
      return { values: { mem_used_ratio: memUsedRatio(parseMeminfo(await read('/proc/meminfo'))) } };
    },
  };
}

export function loadCollector(cadence: Cadence, read: TextReader = readText): Collector {
  return {
    name: 'load',
    fields: ['load1'],
    ...cadence,
    async collect() {
      return { values: { load1: parseLoadavg(await read('/proc/loadavg')).load1 } };
    },
  };
}

export interface SipSocket {
  readonly address: string;
  readonly port: number;
}

/**
 * Receive queue and drops of the socket bound to `socket` on this host; undefined when nothing is
 * bound there. An IPv4 address is looked up in /proc/net/udp, then, if nothing is bound there, in
 * /proc/net/udp6 as its v4-mapped form or the dual-stack wildcard `::` (a server listening on [::]
 * takes IPv4 too).
 */
export async function readUdpSocket(
  socket: SipSocket,
  read: TextReader = readText,
): Promise<UdpSocketFigures | undefined> {
  const lookup = async (table: string, address: string) =>
    findUdpSocket(parseProcNetUdp(await read(table), table, endianness()), address, socket.port);
  return isIPv6(socket.address)
    ? lookup('/proc/net/udp6', socket.address)
    : ((await lookup('/proc/net/udp', socket.address)) ??
        (await lookup('/proc/net/udp6', `::ffff:${socket.address}`).catch(() => undefined)));
}

/** Receive queue and drops of Kamailio's SIP UDP socket (the kernel's view of work not yet read). */
export function udpSocketCollector(
  socket: SipSocket,
  cadence: Cadence,
  read: TextReader = readText,
): Collector {
  return {
    name: 'udp-socket',
    fields: ['udp_rx_queue_bytes', 'udp_drops'],
    ...cadence,
    async collect() {
      const found = await readUdpSocket(socket, read);
      if (!found) throw new Error(`no UDP socket bound to ${socket.address}:${socket.port}`);
      return { values: { udp_rx_queue_bytes: found.rxQueueBytes, udp_drops: found.drops } };
    },
  };
}
