/**
 * JSON-RPC 2.0 over HTTP to Kamailio (xhttp + jsonrpcs), for the agent's statistics and the
 * controller's dispatcher pushes alike.
 *
 * What Kamailio 5.6.3 does that shapes this client:
 * - an RPC error comes back as HTTP 500 *with* the JSON-RPC error object in the body, so the body of
 *   a failed HTTP exchange is always parsed before the status decides;
 * - integer parameters must be JSON numbers (`"1"` fails), hence `RpcParam = string | number`;
 * - keep-alive works, and reusing the connection keeps a warm call under a millisecond.
 * jayson's `timeout` only fires on an idle socket: a server that trickles bytes, or one that accepts
 * and then sits in a long operation, would hold a call forever. Every call here has a real deadline
 * that covers connect, send and the whole reply, and aborts the request (closing its socket) when it
 * passes.
 */
import http from 'node:http';
import https from 'node:https';
import jayson from 'jayson/promise/index.js';

export type RpcParam = string | number;

export interface RpcClientOptions {
  /** e.g. `http://127.0.0.1:5071/RPC` (path as routed to jsonrpc_dispatch; Kamailio ignores it). */
  readonly url: string;
  /** Basic auth; taken from the URL's user info when not given here. */
  readonly username?: string;
  readonly password?: string;
  /** Default deadline of a call, milliseconds (default 2000). */
  readonly deadlineMs?: number;
  /** Connections kept open to this server (default 4). */
  readonly maxSockets?: number;
}

export interface CallOptions {
  readonly deadlineMs?: number;
  /** Abandons the call early (for example on shutdown); rejects with an RpcAbortedError. */
  readonly signal?: AbortSignal;
}

export type RpcErrorKind = 'deadline' | 'aborted' | 'transport' | 'auth' | 'http' | 'rpc' | 'protocol';

/** Every failure of `call()` is one of these; `kind` tells them apart without instanceof chains. */
export abstract class RpcError extends Error {
  abstract readonly kind: RpcErrorKind;
  constructor(
    readonly method: string,
    readonly target: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${method} @ ${target}: ${message}`, options);
  }
}

/** The call did not complete within its deadline; the request was aborted. */
export class RpcDeadlineError extends RpcError {
  override readonly name = 'RpcDeadlineError';
  readonly kind = 'deadline';
  constructor(method: string, target: string, readonly deadlineMs: number) {
    super(method, target, `no complete reply within ${deadlineMs} ms`);
  }
}

/** The caller's AbortSignal fired. */
export class RpcAbortedError extends RpcError {
  override readonly name = 'RpcAbortedError';
  readonly kind = 'aborted';
  constructor(method: string, target: string) {
    super(method, target, 'aborted by caller');
  }
}

/** No HTTP exchange took place: refused, reset, unreachable. `code` is Node's (ECONNREFUSED...). */
export class RpcTransportError extends RpcError {
  override readonly name = 'RpcTransportError';
  readonly kind = 'transport';
  constructor(method: string, target: string, readonly code: string | undefined, cause: unknown) {
    super(method, target, `transport failed: ${code ?? String(cause)}`, { cause });
  }
}

/** HTTP 401 or 403: wrong or missing credentials, or an address not allowed. */
export class RpcAuthError extends RpcError {
  override readonly name = 'RpcAuthError';
  readonly kind = 'auth';
  constructor(method: string, target: string, readonly status: number) {
    super(method, target, `HTTP ${status}: not authorised (check the RPC credentials and allow-list)`);
  }
}

/** A non-2xx HTTP status whose body carried no JSON-RPC error. */
export class RpcHttpError extends RpcError {
  override readonly name = 'RpcHttpError';
  readonly kind = 'http';
  constructor(method: string, target: string, readonly status: number, readonly body: string) {
    super(method, target, `HTTP ${status}: ${body.slice(0, 200)}`);
  }
}

/** The server ran the call and answered with a JSON-RPC error object (e.g. 500 "Method Not Found"). */
export class RpcMethodError extends RpcError {
  override readonly name = 'RpcMethodError';
  readonly kind = 'rpc';
  constructor(method: string, target: string, readonly code: number, readonly rpcMessage: string, readonly data?: unknown) {
    super(method, target, `RPC error ${code}: ${rpcMessage}`);
  }
}

/** The reply was not JSON-RPC we can use (not JSON, no result, empty). */
export class RpcProtocolError extends RpcError {
  override readonly name = 'RpcProtocolError';
  readonly kind = 'protocol';
  constructor(method: string, target: string, detail: string, options?: ErrorOptions) {
    super(method, target, detail, options);
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A JSON-RPC error object, if `v` is one. */
function rpcErrorOf(v: unknown): { code: number; message: string; data?: unknown } | undefined {
  if (!isRecord(v) || !isRecord(v.error)) return undefined;
  const { code, message, data } = v.error;
  if (typeof code !== 'number') return undefined;
  return { code, message: typeof message === 'string' ? message : '', data };
}

export class KamailioRpcClient {
  /** The server as shown in errors and logs: scheme, host, port and path, never credentials. */
  readonly target: string;
  private readonly requestOptions: http.RequestOptions & { auth?: string };
  private readonly agent: http.Agent;
  private readonly secure: boolean;
  private readonly deadlineMs: number;

  constructor(options: RpcClientOptions) {
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new Error(`RPC url must be http: or https:, got ${url.protocol}`);
    }
    this.secure = url.protocol === 'https:';
    this.target = `${url.protocol}//${url.host}${url.pathname}`;
    const username = options.username ?? decodeURIComponent(url.username);
    const password = options.password ?? decodeURIComponent(url.password);
    const AgentClass = this.secure ? https.Agent : http.Agent;
    this.agent = new AgentClass({ keepAlive: true, maxSockets: options.maxSockets ?? 4 });
    this.requestOptions = {
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port === '' ? (this.secure ? 443 : 80) : Number(url.port),
      path: `${url.pathname}${url.search}`,
      agent: this.agent,
      ...(username !== '' ? { auth: `${username}:${password}` } : {}),
    };
    this.deadlineMs = options.deadlineMs ?? 2000;
  }

  /** Calls `method` and resolves its `result`; rejects with an RpcError subclass, nothing else. */
  async call(method: string, params: readonly RpcParam[] = [], options: CallOptions = {}): Promise<unknown> {
    const deadlineMs = options.deadlineMs ?? this.deadlineMs;
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let onCallerAbort: (() => void) | undefined;
    // Settles the call on the deadline whatever the request is doing, then tears the request down.
    const cutoff = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new RpcDeadlineError(method, this.target, deadlineMs));
        abort.abort();
      }, deadlineMs);
      onCallerAbort = () => {
        reject(new RpcAbortedError(method, this.target));
        abort.abort();
      };
      if (options.signal?.aborted) onCallerAbort();
      else options.signal?.addEventListener('abort', onCallerAbort, { once: true });
    });
    // A client per call is only an options object; the agent (and so the connections) is shared.
    const factory = this.secure ? jayson.Client.https : jayson.Client.http;
    const client = factory({ ...this.requestOptions, signal: abort.signal });
    try {
      const response: unknown = await Promise.race([
        client.request(method, [...params]).catch((e: unknown) => {
          throw this.classifyFailure(method, e);
        }),
        cutoff,
      ]);
      return this.resultOf(method, response);
    } finally {
      clearTimeout(timer);
      if (onCallerAbort) options.signal?.removeEventListener('abort', onCallerAbort);
    }
  }

  /** Closes the kept-alive connections. Calls after this open new ones. */
  close(): void {
    this.agent.destroy();
  }

  private resultOf(method: string, response: unknown): unknown {
    if (response === undefined) throw new RpcProtocolError(method, this.target, 'empty reply');
    const error = rpcErrorOf(response);
    if (error) throw new RpcMethodError(method, this.target, error.code, error.message, error.data);
    if (!isRecord(response) || !('result' in response)) {
      throw new RpcProtocolError(method, this.target, 'reply has neither result nor error');
    }
    return response.result;
  }

  /** Maps what jayson rejects with (an HTTP status with the body as message, or a socket error). */
  private classifyFailure(method: string, e: unknown): RpcError {
    if (e instanceof RpcError) return e;
    const err = e as { code?: unknown; message?: unknown; name?: unknown };
    if (typeof err.code === 'number') {
      const status = err.code;
      const body = typeof err.message === 'string' ? err.message : '';
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch {
        parsed = undefined;
      }
      const rpcError = rpcErrorOf(parsed);
      if (rpcError) return new RpcMethodError(method, this.target, rpcError.code, rpcError.message, rpcError.data);
      if (status === 401 || status === 403) return new RpcAuthError(method, this.target, status);
      return new RpcHttpError(method, this.target, status, body);
    }
    if (e instanceof SyntaxError) {
      return new RpcProtocolError(method, this.target, `reply is not JSON: ${e.message}`, { cause: e });
    }
    return new RpcTransportError(method, this.target, typeof err.code === 'string' ? err.code : undefined, e);
  }
}
