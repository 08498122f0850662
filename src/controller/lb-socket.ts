/**
 * The LB's own saturation: its SIP UDP socket's receive queue and drops, as the kernel counts them
 * (/proc/net/udp, parsed by metrics/proc-net-udp.ts). A full queue means the LB's Kamailio reads
 * slower than clients send; every datagram the kernel then drops is a request (or a retransmission)
 * that no backend, no admission limit and no counter in Kamailio ever sees. Pure: readings in,
 * status out; lb-socket-watch.ts is the shell that reads the table.
 *
 * Only the host that holds the socket can see it, so the controller measures an LB node's socket
 * only when it runs on that node's host; elsewhere the status says why it is unmeasured.
 */
import { addressBytes, type UdpSocketFigures } from '../metrics/proc-net-udp.js';
import type { UdpAddress } from '../util/udp-address.js';
import type { ControllerEvent } from './events.js';

export interface LbSocketMeasured {
  readonly state: 'measured';
  /** "address:port" as configured. */
  readonly socket: string;
  readonly rxQueueBytes: number;
  /** The kernel's counter since the socket was created (it restarts with the LB). */
  readonly drops: number;
  /** Drops per second since the previous reading; null on the first and after a counter reset. */
  readonly dropsPerS: number | null;
  /** Sockets summed (more than one with SO_REUSEPORT). */
  readonly sockets: number;
  /** The counter before the current run of dropping readings began; null when not dropping. */
  readonly droppingFrom: number | null;
  /** Wall-clock ms of the reading. */
  readonly at: number;
  /** Monotonic ms of the reading, for the next rate. */
  readonly mono: number;
}

export interface LbSocketUnmeasured {
  readonly state: 'unmeasured';
  readonly socket: string;
  readonly reason: string;
  readonly at: number;
}

export type LbSocketStatus = LbSocketMeasured | LbSocketUnmeasured;

/** One reading of the table: the socket's figures, undefined when nothing is bound there, or why it failed. */
export type LbSocketReading = { readonly figures: UdpSocketFigures | undefined } | { readonly error: string };

/** An interface address as node:os networkInterfaces() lists it. */
export interface HostInterface {
  readonly address: string;
  readonly netmask: string;
  readonly family: string;
  readonly internal: boolean;
}

export const socketText = (s: UdpAddress): string => `${s.address}:${s.port}`;

/**
 * Whether `address` is one of this host's: an interface's own address, or any address inside a
 * loopback interface's network (Linux answers for all of 127.0.0.0/8 on lo, not only 127.0.0.1).
 */
export function isHostAddress(address: string, interfaces: readonly HostInterface[]): boolean {
  const want = addressBytes(address);
  if (!want) return false;
  return interfaces.some((i) => {
    const own = addressBytes(i.address);
    const mask = addressBytes(i.netmask);
    if (!own || own.length !== want.length) return false;
    if (own.equals(want)) return true;
    return i.internal && mask !== undefined && own.every((b, k) => (b & mask[k]!) === (want[k]! & mask[k]!));
  });
}

/** Why a socket is not measured, in words an operator can act on. */
export function unmeasuredReason(
  socket: UdpAddress,
  reading: LbSocketReading,
  interfaces: readonly HostInterface[],
): string {
  if (!isHostAddress(socket.address, interfaces)) {
    return `${socket.address} is not an address of this host: the controller measures an LB's socket only when it runs on the LB host`;
  }
  if ('error' in reading) return `cannot read /proc/net/udp: ${reading.error}`;
  return `no UDP socket bound to ${socketText(socket)} on this host (is the LB's Kamailio running?)`;
}

/**
 * The status after one reading. The drop rate is the counter's growth over the time between two
 * measured readings; a counter that went down is a new socket (the LB restarted), so no rate then.
 * An address that is not this host's is never measured, even when the table has figures for it: a
 * socket bound to 0.0.0.0 on the same port here (this host's own proxy) would answer for it.
 */
export function nextLbSocketStatus(
  previous: LbSocketStatus | null,
  socket: UdpAddress,
  reading: LbSocketReading,
  now: { readonly mono: number; readonly wall: number },
  interfaces: readonly HostInterface[],
): LbSocketStatus {
  const text = socketText(socket);
  const figures = 'figures' in reading ? reading.figures : undefined;
  if (!figures || !isHostAddress(socket.address, interfaces)) {
    return {
      state: 'unmeasured',
      socket: text,
      reason: unmeasuredReason(socket, reading, interfaces),
      at: now.wall,
    };
  }
  const prior = previous?.state === 'measured' && previous.socket === text ? previous : null;
  const seconds = prior ? (now.mono - prior.mono) / 1000 : 0;
  const dropsPerS =
    prior && seconds > 0 && figures.drops >= prior.drops ? (figures.drops - prior.drops) / seconds : null;
  return {
    state: 'measured',
    socket: text,
    rxQueueBytes: figures.rxQueueBytes,
    drops: figures.drops,
    dropsPerS,
    sockets: figures.sockets,
    droppingFrom: dropsPerS !== null && dropsPerS > 0 ? (prior?.droppingFrom ?? prior!.drops) : null,
    at: now.wall,
    mono: now.mono,
  };
}

/**
 * What an operator is told of a node's socket between two statuses: that it is measured or not
 * (and why), once per change; that it started dropping, once per run of dropping readings; and how
 * many datagrams the run lost when a reading shows the counter still again. Not one line a second.
 */
export function lbSocketEvents(
  node: string,
  previous: LbSocketStatus | null,
  next: LbSocketStatus,
): ControllerEvent[] {
  const events: ControllerEvent[] = [];
  const { socket } = next;
  if (next.state === 'unmeasured') {
    if (previous?.state !== 'unmeasured' || previous.reason !== next.reason)
      events.push({ type: 'lb_socket_unmeasured', node, socket, reason: next.reason });
    return events;
  }
  if (previous?.state !== 'measured') events.push({ type: 'lb_socket_measured', node, socket });
  const wasDropping = previous?.state === 'measured' && previous.droppingFrom !== null;
  if (next.droppingFrom !== null && !wasDropping) {
    events.push({
      type: 'lb_socket_dropping',
      node,
      socket,
      drops_per_s: Math.round(next.dropsPerS ?? 0),
      rx_queue_bytes: next.rxQueueBytes,
    });
  } else if (wasDropping && next.dropsPerS === 0 && previous.droppingFrom !== null) {
    events.push({ type: 'lb_socket_drops_ended', node, socket, dropped: next.drops - previous.droppingFrom });
  }
  return events;
}

/** A status as the API and the status file show it (schemas/api/lb-nodes.schema.json#/$defs/lb_socket). */
export type LbSocketJson =
  | {
      readonly state: 'measured';
      readonly socket: string;
      readonly rx_queue_bytes: number;
      readonly drops: number;
      readonly drops_per_s: number | null;
      readonly sockets: number;
      readonly at: string;
    }
  | { readonly state: 'unmeasured'; readonly socket: string; readonly reason: string; readonly at: string };

export function lbSocketJson(s: LbSocketStatus): LbSocketJson {
  const at = new Date(s.at).toISOString();
  if (s.state === 'unmeasured') return { state: s.state, socket: s.socket, reason: s.reason, at };
  return {
    state: s.state,
    socket: s.socket,
    rx_queue_bytes: s.rxQueueBytes,
    drops: s.drops,
    drops_per_s: s.dropsPerS === null ? null : Math.round(s.dropsPerS * 1000) / 1000,
    sockets: s.sockets,
    at,
  };
}

/** One line for `sipweigh status`. */
export function lbSocketLine(s: LbSocketJson): string {
  if (s.state === 'unmeasured') return `socket ${s.socket} NOT MEASURED: ${s.reason}`;
  const rate = s.drops_per_s === null ? '' : `, ${s.drops_per_s}/s now`;
  return `socket ${s.socket}: receive queue ${s.rx_queue_bytes} bytes, ${s.drops} dropped${rate}`;
}
