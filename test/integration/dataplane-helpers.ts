/**
 * Tools for the data-plane tests: a raw HTTP JSON-RPC client that exposes status codes (the tests
 * check 401/403), Kamailio statistics, a UDP SIP peer that sees the source address of every reply,
 * and a reader for sipp's message traces.
 */
import { createSocket, type Socket } from 'node:dgram';
import { request } from 'node:http';
import { connect } from 'node:net';
import { readFileSync } from 'node:fs';
import { DATAPLANE_NET } from '../../src/lab/dataplane.js';

export interface HttpReply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: string;
}

export interface HttpRpcOptions {
  /** Source address of the request (the LB allow-lists sources). */
  readonly localAddress?: string;
  /** HTTP Basic credentials; none sent when absent. */
  readonly auth?: { readonly user: string; readonly password: string };
  /** A raw Authorization header, sent instead of `auth`. */
  readonly authorization?: string;
}

export function postJson(url: string, payload: unknown, opts: HttpRpcOptions = {}): Promise<HttpReply> {
  const body = JSON.stringify(payload);
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(body)),
  };
  if (opts.authorization !== undefined) {
    headers.authorization = opts.authorization;
  } else if (opts.auth) {
    headers.authorization = `Basic ${Buffer.from(`${opts.auth.user}:${opts.auth.password}`).toString('base64')}`;
  }
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', headers, localAddress: opts.localAddress, timeout: 5000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString('utf8'),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`HTTP request to ${url} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

let rpcId = 0;

/** A JSON-RPC call that must succeed: returns `result`, throws with the reply otherwise. */
export async function rpc(
  url: string,
  method: string,
  params: unknown[] = [],
  opts: HttpRpcOptions = {},
): Promise<unknown> {
  const reply = await postJson(url, { jsonrpc: '2.0', method, params, id: ++rpcId }, opts);
  let parsed: { result?: unknown; error?: unknown } | undefined;
  try {
    parsed = JSON.parse(reply.body) as { result?: unknown; error?: unknown };
  } catch {
    /* not JSON: reported below */
  }
  if (reply.status !== 200 || !parsed || parsed.error !== undefined || !('result' in parsed)) {
    throw new Error(`${method} at ${url}: HTTP ${reply.status} ${reply.body.slice(0, 300)}`);
  }
  return parsed.result;
}

/** The LB's JSON-RPC as the allowed client with the right credentials. */
export const lbRpcAccess: HttpRpcOptions = {
  localAddress: DATAPLANE_NET.rpcClientIp,
  auth: { user: DATAPLANE_NET.rpcUser, password: DATAPLANE_NET.rpcPassword },
};

export type Stats = Readonly<Record<string, number>>;

/** Core and script counters (`core.rcv_requests_ack`, `script.sipweigh_sticky`...). */
export async function fetchStats(url: string, opts: HttpRpcOptions = {}): Promise<Stats> {
  const result = await rpc(url, 'stats.fetchn', ['core:', 'script:'], opts);
  if (typeof result !== 'object' || result === null)
    throw new Error(`stats.fetchn: unexpected ${JSON.stringify(result)}`);
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(result)) if (typeof v === 'number') out[k] = v;
  return out;
}

/** The LB's statistics (through its guarded JSON-RPC) and every backend's, of a data-plane topology. */
export const lbStatsOf = (plane: { readonly lbRpcUrl: string }) => fetchStats(plane.lbRpcUrl, lbRpcAccess);
export const backendStatsOf = (plane: { readonly backends: readonly { readonly rpcUrl: string }[] }) =>
  Promise.all(plane.backends.map((b) => fetchStats(b.rpcUrl)));

export function stat(stats: Stats, name: string): number {
  const v = stats[name];
  if (v === undefined) throw new Error(`no statistic ${name}`);
  return v;
}

export function delta(before: Stats, after: Stats, name: string): number {
  return stat(after, name) - stat(before, name);
}

// ---------------------------------------------------------------------------------------------
// A UDP SIP peer

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

/**
 * Sends one request over a new TCP connection from `localAddress` and returns the first final
 * reply that comes back on it (undefined if none within `timeoutMs`). `build` gets the connection's
 * local `address:port` for the Via.
 */
export function tcpSipRequest(
  localAddress: string,
  remote: { readonly address: string; readonly port: number },
  build: (via: string) => string,
  timeoutMs = 3000,
): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: remote.address, port: remote.port, localAddress });
    let data = '';
    const finish = (reply: string | undefined) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(reply);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    sock.on('connect', () => {
      sock.write(build(`${localAddress}:${sock.localPort ?? 0}`).replace(/\r?\n/g, '\r\n'));
    });
    sock.on('data', (chunk: Buffer) => {
      data += chunk.toString('utf8');
      const final = /(?:^|\r\n\r\n)(SIP\/2\.0 [2-6]\d\d [^]*?\r\n\r\n)/.exec(data);
      if (final?.[1]) finish(final[1]);
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// sipp message traces (-trace_msg)

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
