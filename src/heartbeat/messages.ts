/**
 * Heartbeat protocol v1: the messages as the program sees them (the wire form is in codec.ts and
 * docs/heartbeat-protocol.md). One discriminated union, keyed by `type`, so a handler that switches
 * on it cannot forget a case or read a field the message does not have.
 */

export const PROTOCOL_VERSION = 1;

/** Largest datagram we send or accept: fits the IPv6 minimum MTU (1280) minus IP/UDP headers, so it never fragments. */
export const MAX_DATAGRAM_BYTES = 1200;

/** Backend ids travel in the binary header; this is their whole alphabet and length. */
export const BACKEND_ID_PATTERN = /^[A-Za-z0-9._:@-]{1,64}$/;
export const MAX_BACKEND_ID_BYTES = 64;

/** Sender boot ids: random per process start, so a restarted agent gets a fresh sequence space. */
export const BOOT_ID_PATTERN = /^[A-Za-z0-9_-]{8,64}$/;

/** Wire codes of the message types (header byte 3). Never renumber: add new codes instead. */
export const MESSAGE_TYPE_CODES = {
  probe: 1,
  report: 2,
  hello: 3,
  hello_ack: 4,
  bye: 5,
} as const;

export type MessageType = keyof typeof MESSAGE_TYPE_CODES;
export const MESSAGE_TYPES = Object.keys(MESSAGE_TYPE_CODES) as MessageType[];

/** Which side sends what: a receiver drops a well-signed message of the other direction as `unexpected_type`. */
export const CONTROLLER_SENDS: readonly MessageType[] = ['probe', 'hello_ack'];
export const AGENT_SENDS: readonly MessageType[] = ['report', 'hello', 'bye'];

/**
 * What an agent measures (agreed in HEARTBEAT-INTERFACE.md). A measured field is `null` when its
 * collector failed or does not apply: the report is degraded, never withheld.
 */
export interface ReportMetrics {
  /** Host CPU busy fraction 0..1, from /proc/stat deltas. */
  cpu_util: number | null;
  /** 1 - MemAvailable/MemTotal, 0..1. */
  mem_used_ratio: number | null;
  /** 1-minute load average. */
  load1: number | null;
  /** Transactions in memory (tm.stats current). */
  tm_current: number | null;
  /** Active dialogs. */
  dialogs_active: number | null;
  /** Requests received per second. */
  req_rate: number | null;
  /** 5xx replies sent per second. */
  err5xx_rate: number | null;
  /** rx_queue of the SIP UDP socket: work waiting before Kamailio reads it. */
  udp_rx_queue_bytes: number | null;
  /** Cumulative kernel drop counter of that socket. */
  udp_drops: number | null;
  /** Round trip of a SIP OPTIONS to the local Kamailio, ms. */
  options_rtt_ms: number | null;
  /** Configured capacity, calls per second (> 0). */
  capacity: number;
  /** The agent (or its operator) is draining this backend. */
  draining: boolean;
}

export const METRIC_FIELDS = [
  'cpu_util',
  'mem_used_ratio',
  'load1',
  'tm_current',
  'dialogs_active',
  'req_rate',
  'err5xx_rate',
  'udp_rx_queue_bytes',
  'udp_drops',
  'options_rtt_ms',
] as const satisfies readonly (keyof ReportMetrics)[];

/** Fields every message carries. `seq` and `boot` are the *sender's*; `ts` is the sender's wall clock (ms since the Unix epoch). */
interface Envelope {
  /** Backend the message is about; selects the key. */
  backendId: string;
  /** Sender's sequence number, strictly increasing per boot (0 .. 2^53-1). */
  seq: number;
  /** Sender's wall clock at sending, integer ms since 1970-01-01 UTC. */
  ts: number;
  /** Sender's boot id. */
  boot: string;
}

/** Controller → agent: "report now". */
export interface ProbeMessage extends Envelope {
  type: 'probe';
}

/** Agent → controller: the answer to a probe; echoes its seq/ts so the controller measures the round trip. */
export interface ReportMessage extends Envelope {
  type: 'report';
  echoSeq: number;
  echoTs: number;
  metrics: ReportMetrics;
}

/** Agent → controller at start, repeated until a hello_ack arrives. */
export interface HelloMessage extends Envelope {
  type: 'hello';
  /** Dispatcher set the agent asks to join (accepted only where self-registration is allowed). */
  set: number;
  /** SIP URI the LB should send to, e.g. sip:10.0.0.5:5060. */
  uri: string;
  capacity: number;
  /** Free-form agent software name/version, for operators. */
  agent?: string;
}

/** Controller → agent: hello accepted; tells the agent the probe interval to expect. */
export interface HelloAckMessage extends Envelope {
  type: 'hello_ack';
  echoSeq: number;
  echoTs: number;
  intervalMs: number;
}

/** Agent → controller on shutdown: drain me now. */
export interface ByeMessage extends Envelope {
  type: 'bye';
  reason?: string;
}

export type HeartbeatMessage = ProbeMessage | ReportMessage | HelloMessage | HelloAckMessage | ByeMessage;
