/**
 * Tools for the data-plane tests: a raw HTTP JSON-RPC client that exposes status codes (the tests
 * check 401/403), Kamailio statistics, a UDP SIP peer that sees the source address of every reply,
 * and a reader for sipp's message traces.
 */
import { request } from 'node:http';
import { connect } from 'node:net';
import { DATAPLANE_NET } from '../../src/lab/dataplane.js';

// The UDP SIP peer, the request builder and the sipp trace reader moved to src/lab/sip-peer.ts (the
// cluster benchmark uses them too); re-exported for the tests that import them from here.
export {
  header,
  isRequest,
  newBranch,
  sipRequest,
  sippReceivedMessages,
  UdpSipPeer,
  type ReceivedSip,
  type RequestSpec,
} from '../../src/lab/sip-peer.js';

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
