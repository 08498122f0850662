/**
 * The controller's HTTP API on node:http: routing, auth, bodies and errors here; what each answer
 * says comes from views.ts. Nothing a client sends can crash it: every request ends in a JSON
 * answer (or, for a request too malformed to parse, a 400 and a closed connection), and a bug in a
 * handler is a 500 and an `api_error` event, not a dead controller.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ControllerSnapshot } from '../controller/snapshot.js';
import type { ReloadResult } from '../controller/reload.js';
import type { ControllerEvent } from '../controller/events.js';
import { authorize, type AuthSettings } from './auth.js';
import { parseBody, readBody } from './body.js';
import { historyParam, streamEvents, type EventSource } from './event-stream.js';
import { matchRoute, type RouteName } from './router.js';
import { backendJson, backendsJson, lbNodesJson, readyJson } from './views.js';

/** What the API needs from the controller (an interface, so the server can be tested on its own). */
export interface ApiDeps {
  snapshot(): ControllerSnapshot;
  notReadyReasons(): string[];
  /** False for an unknown backend. */
  drain(id: string, on: boolean, reason: string | null): boolean;
  reload(): Promise<ReloadResult>;
  metrics(): Promise<{ readonly contentType: string; readonly text: string }>;
  /** The controller's events (GET /api/v1/events); the API tells its own failures there too. */
  readonly events: EventSource & { emit(event: ControllerEvent): void };
}

export interface ApiServerOptions {
  readonly listen: string;
  readonly port: number;
  readonly auth: AuthSettings;
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly headers?: Readonly<Record<string, string | readonly string[]>>;
  /** Already JSON or text (metrics). */
  readonly raw?: { readonly contentType: string; readonly text: string };
  /** Not one answer but the event stream, from now on (and first the kept events when `history`). */
  readonly events?: { readonly history: boolean };
}

const json = (status: number, body: unknown, headers?: Answer['headers']): Answer => ({
  status,
  body,
  ...(headers ? { headers } : {}),
});
const error = (status: number, message: string, headers?: Answer['headers']): Answer =>
  json(status, { error: message }, headers);

export class ApiServer {
  private auth: AuthSettings;

  private constructor(
    private readonly server: Server,
    private readonly deps: ApiDeps,
    auth: AuthSettings,
  ) {
    this.auth = auth;
  }

  static async start(opts: ApiServerOptions, deps: ApiDeps): Promise<ApiServer> {
    // Node checks these timeouts only every connectionsCheckingInterval (30 s by default): check each
    // second, and cap the connections, so idle or trickling clients cannot pile up.
    const server = createServer({
      requestTimeout: 10_000,
      headersTimeout: 5_000,
      keepAliveTimeout: 5_000,
      connectionsCheckingInterval: 1_000,
    });
    server.maxConnections = 256;
    const api = new ApiServer(server, deps, opts.auth);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => void api.handle(req, res));
    // A request node:http cannot even parse: answer 400 if the socket still takes it, then close.
    server.on('clientError', (_err, socket) => {
      if (socket.writable)
        socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      else socket.destroy();
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port, opts.listen, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // After start, a server error (none expected once bound) is told as an event, never thrown.
    server.on('error', (e) =>
      deps.events.emit({ type: 'api_error', stage: 'server', error: e.message, method: null, url: null }),
    );
    return api;
  }

  get address(): { address: string; port: number } {
    const a = this.server.address() as AddressInfo;
    return { address: a.address, port: a.port };
  }

  /** A reload may change the token or open reads. */
  setAuth(auth: AuthSettings): void {
    this.auth = auth;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let answer: Answer;
    try {
      answer = await this.answer(req);
    } catch (e) {
      this.deps.events.emit({
        type: 'api_error',
        stage: 'handler',
        error: (e as Error).message,
        method: req.method ?? null,
        url: req.url ?? null,
      });
      answer = error(500, 'internal error (logged by the controller)');
    }
    if (answer.events) streamEvents(res, this.deps.events, answer.events.history);
    else this.send(res, answer);
  }

  private send(res: ServerResponse, a: Answer): void {
    if (res.headersSent || res.destroyed) return;
    const body = a.raw ? a.raw.text : `${JSON.stringify(a.body)}\n`;
    res.writeHead(a.status, {
      'Content-Type': a.raw ? a.raw.contentType : 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
      ...a.headers,
    });
    res.end(body);
  }

  private async answer(req: IncomingMessage): Promise<Answer> {
    const route = matchRoute(req.method ?? '', req.url ?? '');
    if (route.kind === 'not_found') return error(404, `no such endpoint: ${req.method} ${pathOf(req.url)}`);
    if (route.kind === 'method_not_allowed') {
      return error(
        405,
        `${req.method} not allowed on ${pathOf(req.url)} (allowed: ${route.allow.join(', ')})`,
        {
          Allow: route.allow.join(', '),
        },
      );
    }
    const auth = authorize(route.access, req.headers.authorization, this.auth);
    if (!auth.ok) {
      // Nothing of the presented token is logged or echoed.
      return error(401, auth.error, { 'WWW-Authenticate': 'Bearer realm="sipweigh"' });
    }
    return this.route(route.name, route.id, req);
  }

  private async route(name: RouteName, id: string | null, req: IncomingMessage): Promise<Answer> {
    const d = this.deps;
    switch (name) {
      case 'healthz':
        return json(200, { status: 'ok' });
      case 'readyz': {
        const r = readyJson(d.notReadyReasons());
        return json(r.ready ? 200 : 503, r);
      }
      case 'metrics':
        return { status: 200, body: null, raw: await d.metrics() };
      case 'status':
        return json(200, d.snapshot().status);
      case 'backends':
        return json(200, backendsJson(d.snapshot()));
      case 'lb_nodes':
        return json(200, lbNodesJson(d.snapshot()));
      case 'sources':
        return json(200, d.snapshot().sources);
      case 'events': {
        const q = historyParam(req.url ?? '');
        return q.ok ? { status: 200, body: null, events: { history: q.history } } : error(400, q.error);
      }
      case 'backend':
        return this.oneBackend(id ?? '');
      case 'drain':
      case 'undrain':
        return this.drain(id ?? '', name === 'drain', req);
      case 'reload': {
        const body = await this.body<Record<string, never>>(req, null);
        if (!body.ok) return body.answer;
        const r = await d.reload();
        return json(r.reloaded ? 200 : 400, r);
      }
    }
  }

  private oneBackend(id: string): Answer {
    const snap = this.deps.snapshot();
    const v = snap.views.find((b) => b.id === id);
    return v ? json(200, backendJson(snap, v)) : error(404, `no backend ${id}`);
  }

  private async drain(id: string, on: boolean, req: IncomingMessage): Promise<Answer> {
    const body = await this.body<{ reason?: string }>(req, 'drain-request');
    if (!body.ok) return body.answer;
    if (!this.deps.drain(id, on, body.value.reason ?? null)) return error(404, `no backend ${id}`);
    return this.oneBackend(id);
  }

  /** The body, checked; `schema` null: the route takes none (an empty body or `{}`). */
  private async body<T>(
    req: IncomingMessage,
    schema: 'drain-request' | null,
  ): Promise<{ ok: true; value: T } | { ok: false; answer: Answer }> {
    const read = await readBody(req);
    if (!read.ok) return { ok: false, answer: error(400, read.error, { Connection: 'close' }) };
    if (schema === null) {
      const t = read.text.trim();
      if (t === '' || t === '{}') return { ok: true, value: {} as T };
      return { ok: false, answer: error(400, 'body: this endpoint takes no body (send none, or {})') };
    }
    const parsed = parseBody<T>(read.text, schema, {} as T);
    return parsed.ok ? { ok: true, value: parsed.value } : { ok: false, answer: error(400, parsed.error) };
  }
}

function pathOf(url: string | undefined): string {
  // Echo at most a short, printable path: never a query (it could carry anything) or control bytes.
  return (url ?? '')
    .split('?', 1)[0]!
    .slice(0, 100)
    .replace(/[^\x20-\x7e]/g, '?');
}
