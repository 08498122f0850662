/**
 * Raw SIP over UDP on loopback, for the tests and the benchmarks that write their own messages: a UDP
 * SIP peer that sees the source address of every reply, a request builder, and a reader for sipp's
 * message traces (`-trace_msg`: which requests a sipp UAS received).
 */
import { createSocket, type Socket } from 'node:dgram';
import { readFileSync } from 'node:fs';

export interface ReceivedSip {
  readonly address: string;
  readonly port: number;
  readonly text: string;
  /** Status code of a reply; undefined for a request. */
  readonly status: number | undefined;
}

export function header(text: string, name: string): string | undefined {
  const re = new RegExp(`^${name}:\\s*(.*)$`, 'im');
  return re.exec(text)?.[1]?.trim();
}

export class UdpSipPeer {
  private readonly received: ReceivedSip[] = [];
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly socket: Socket,
    readonly address: string,
    readonly port: number,
  ) {
    socket.on('message', (buf, rinfo) => {
      const text = buf.toString('utf8');
      const m = /^SIP\/2\.0 (\d{3})/.exec(text);
      this.received.push({
        address: rinfo.address,
        port: rinfo.port,
        text,
        status: m ? Number(m[1]) : undefined,
      });
      for (const w of this.waiters) w();
    });
  }

  static async bind(address: string, port = 0): Promise<UdpSipPeer> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, address, () => resolve());
    });
    return new UdpSipPeer(socket, address, socket.address().port);
  }

  send(text: string, address: string, port: number): Promise<void> {
    const wire = text.replace(/\r?\n/g, '\r\n');
    return new Promise((resolve, reject) =>
      this.socket.send(wire, port, address, (e) => (e ? reject(e) : resolve())),
    );
  }

  /** Messages received so far that satisfy `match`. */
  messages(match: (m: ReceivedSip) => boolean = () => true): ReceivedSip[] {
    return this.received.filter(match);
  }

  /** Waits (bounded) for a message satisfying `match`; undefined if none came in time. */
  async waitFor(match: (m: ReceivedSip) => boolean, timeoutMs = 3000): Promise<ReceivedSip | undefined> {
    const found = () => this.received.find(match);
    if (found()) return found();
    return new Promise((resolve) => {
      const done = () => {
        const m = found();
        if (!m) return;
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(m);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.add(done);
    });
  }

  close(): void {
    this.socket.close();
  }
}

export interface RequestSpec {
  readonly method: string;
  readonly ruri: string;
  readonly callId: string;
  readonly cseq?: number;
  readonly branch?: string;
  /** Host:port written into the Via (defaults to the peer's own). */
  readonly via: string;
  /** Via transport (UDP unless said otherwise). */
  readonly transport?: 'UDP' | 'TCP';
  readonly toTag?: string;
  readonly extraHeaders?: readonly string[];
  readonly body?: string;
}

let branchCounter = 0;
export const newBranch = () => `z9hG4bK-dp-${process.pid}-${++branchCounter}`;

export function sipRequest(spec: RequestSpec): string {
  const body = spec.body ?? '';
  const lines = [
    `${spec.method} ${spec.ruri} SIP/2.0`,
    `Via: SIP/2.0/${spec.transport ?? 'UDP'} ${spec.via};branch=${spec.branch ?? newBranch()};rport`,
    `From: <sip:dataplane-test@${spec.via}>;tag=dp-${spec.callId.replace(/[^A-Za-z0-9-]/g, '')}`,
    `To: <${spec.ruri}>${spec.toTag ? `;tag=${spec.toTag}` : ''}`,
    `Call-ID: ${spec.callId}`,
    `CSeq: ${spec.cseq ?? 1} ${spec.method}`,
    `Contact: <sip:dataplane-test@${spec.via}>`,
    'Max-Forwards: 70',
    ...(spec.extraHeaders ?? []),
  ];
  if (body) lines.push('Content-Type: application/sdp');
  lines.push(`Content-Length: ${Buffer.byteLength(body)}`, '', body);
  return lines.join('\r\n');
}

/** The SIP messages a sipp instance received, in order, from its `-trace_msg` file. */
export function sippReceivedMessages(traceFile: string): string[] {
  let text = '';
  try {
    text = readFileSync(traceFile, 'utf8');
  } catch {
    return [];
  }
  // Each entry starts with a marker line; sipp sometimes writes a "sent" marker without the message
  // before a "received" one, so cut at every marker, not only at the dashed separators.
  const marker = /^(?:-{20,} .*|(?:UDP|TCP|TLS) message (?:sent \(\d+ bytes\)|received \[\d+\] bytes ):)$/gm;
  const out: string[] = [];
  let match: RegExpExecArray | null;
  let current: { received: boolean; start: number } | undefined;
  const flush = (end: number) => {
    if (current?.received) {
      const msg = text.slice(current.start, end).trim();
      if (msg) out.push(msg);
    }
  };
  while ((match = marker.exec(text)) !== null) {
    flush(match.index);
    current = { received: match[0].includes('received'), start: match.index + match[0].length };
  }
  flush(text.length);
  return out;
}

export const isRequest = (method: string) => (msg: string) => msg.startsWith(`${method} `);
