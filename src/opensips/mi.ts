/**
 * OpenSIPS MI over HTTP (httpd + mi_http): JSON-RPC 2.0, POST only, named parameters.
 *
 * What OpenSIPS 3.6 does that shapes this client: every JSON-RPC answer, an error object included,
 * comes with HTTP 200 (so the body decides); a request without an id is a notification and gets no
 * body (so every call carries one); there are no credentials and no source allow-list (the LB binds
 * httpd to a management address). Every call has a deadline covering connect, send and the reply.
 */
import http from 'node:http';

export type MiParams = Readonly<Record<string, string | number | readonly string[]>>;

/** An MI command answered with a JSON-RPC error (`code` is OpenSIPS's: -32601 unknown, 500...). */
export class MiError extends Error {
  override readonly name = 'MiError';
  constructor(
    readonly method: string,
    readonly code: number,
    readonly miMessage: string,
  ) {
    super(`MI ${method}: ${code} ${miMessage}`);
  }
}

export interface MiClientOptions {
  /** e.g. `http://127.0.0.1:8888/mi`. */
  readonly url: string;
  /** Deadline of a call, milliseconds (default 2000). */
  readonly deadlineMs?: number;
}

export class OpenSipsMiClient {
  private id = 0;
  /**
   * No keep-alive: OpenSIPS's httpd (libmicrohttpd) closes an idle connection after a few seconds,
   * and a request sent on it just then fails with "socket hang up" (seen after a 10 s pause).
   */
  private readonly agent = new http.Agent({ keepAlive: false, maxSockets: 2 });

  constructor(private readonly options: MiClientOptions) {}

  get target(): string {
    return this.options.url;
  }

  /** Calls `method` and returns its `result`; throws MiError on a JSON-RPC error, Error otherwise. */
  async call(method: string, params: MiParams = {}, deadlineMs?: number): Promise<unknown> {
    const body = JSON.stringify({ jsonrpc: '2.0', method, params, id: ++this.id });
    const text = await this.post(body, deadlineMs ?? this.options.deadlineMs ?? 2000, method);
    let reply: { result?: unknown; error?: { code?: unknown; message?: unknown } };
    try {
      reply = JSON.parse(text) as typeof reply;
    } catch {
      throw new Error(`MI ${method} @ ${this.target}: not JSON: ${text.slice(0, 200)}`);
    }
    if (reply.error !== undefined) {
      const code = typeof reply.error.code === 'number' ? reply.error.code : 0;
      const message =
        typeof reply.error.message === 'string' ? reply.error.message : JSON.stringify(reply.error);
      throw new MiError(method, code, message);
    }
    if (!('result' in reply)) throw new Error(`MI ${method} @ ${this.target}: no result`);
    return reply.result;
  }

  private post(body: string, deadlineMs: number, method: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        this.options.url,
        {
          method: 'POST',
          agent: this.agent,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            if (res.statusCode !== 200) {
              reject(
                new Error(`MI ${method} @ ${this.target}: HTTP ${res.statusCode} ${text.slice(0, 200)}`),
              );
            } else resolve(text);
          });
          res.on('error', (e) => {
            clearTimeout(timer);
            reject(e);
          });
        },
      );
      const timer = setTimeout(
        () => req.destroy(new Error(`MI ${method} @ ${this.target}: no reply within ${deadlineMs} ms`)),
        deadlineMs,
      );
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
