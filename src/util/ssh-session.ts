/**
 * One SSH connection to a backend host, kept open and re-established with backoff when it drops.
 *
 * The host key is checked against a configured SHA256 fingerprint (the form `ssh-keygen -lf` prints,
 * `SHA256:` + unpadded base64 of the key blob's SHA-256). A mismatch refuses the connection and is
 * reported as such, never as a generic failure: it means either a re-installed host or someone in
 * the middle, and an operator must look. Commands run with a deadline; a command that overruns has
 * its channel closed.
 */
import { createHash } from 'node:crypto';
import { Client, type ClientChannel, type ConnectConfig } from 'ssh2';
import { backoffDelayMs, type BackoffPolicy } from './backoff.js';
import { silentLogger, type Logger } from './logger.js';
import { RemoteShell } from '../metrics/remote-shell.js';

export interface SshTarget {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  /** OpenSSH or PEM private key (contents, not a path). */
  readonly privateKey: Buffer | string;
  readonly passphrase?: string;
  /** Expected host key fingerprint, `SHA256:...` as `ssh-keygen -lf` prints it. */
  readonly hostFingerprint: string;
}

export interface SshSessionOptions {
  readonly connectTimeoutMs?: number;
  /** Liveness check of an idle connection (ssh keepalive), so a dead host is noticed without a command. */
  readonly keepaliveIntervalMs?: number;
  readonly reconnect?: BackoffPolicy;
}

export const SSH_RECONNECT: BackoffPolicy = { initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.2 };

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
  /** Exit status; null when the command ended by a signal or the channel closed without one. */
  readonly code: number | null;
}

/** The host presented a key other than the configured one. */
export class SshHostKeyMismatchError extends Error {
  override readonly name = 'SshHostKeyMismatchError';
  constructor(
    readonly target: string,
    readonly presented: string,
    readonly expected: string,
  ) {
    super(
      `host key of ${target} is ${presented}, expected ${expected}: refusing to connect (re-installed host, or a man in the middle?)`,
    );
  }
}

/** No connection at the moment (connecting, or waiting to retry after a failure). */
export class SshNotConnectedError extends Error {
  override readonly name = 'SshNotConnectedError';
}

/** SHA256 fingerprint of an SSH public key blob, as OpenSSH prints it. */
export function sha256Fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** Accepts `SHA256:<base64>` (padding optional) or the bare base64; refuses MD5 and other forms. */
export function normaliseFingerprint(text: string): string {
  const t = text.trim();
  const body = t.startsWith('SHA256:') ? t.slice('SHA256:'.length) : t;
  if (!/^[A-Za-z0-9+/]{43}=?$/.test(body)) {
    throw new Error(
      `host fingerprint must be SHA256:<43 base64 characters> as "ssh-keygen -lf" prints it, got ${JSON.stringify(text)}`,
    );
  }
  return `SHA256:${body.replace(/=+$/, '')}`;
}

export type SshSessionState = 'connecting' | 'ready' | 'waiting' | 'closed';

export class SshSession {
  readonly target: string;
  private readonly expectedFingerprint: string;
  private client: Client | undefined;
  private shell: RemoteShell | undefined;
  private current: SshSessionState = 'waiting';
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private failure: Error | undefined;
  private connects = 0;

  constructor(
    private readonly ssh: SshTarget,
    private readonly options: SshSessionOptions = {},
    private readonly logger: Logger = silentLogger,
  ) {
    this.target = `${ssh.username}@${ssh.host}:${ssh.port}`;
    this.expectedFingerprint = normaliseFingerprint(ssh.hostFingerprint);
  }

  get state(): SshSessionState {
    return this.current;
  }

  /** Why the last connection attempt failed or the connection dropped (cleared once connected). */
  get lastError(): Error | undefined {
    return this.failure;
  }

  /** Successful connections so far (a reconnect raises it). */
  get connections(): number {
    return this.connects;
  }

  start(): void {
    if (this.current === 'closed' || this.client) return;
    this.connect();
  }

  close(): void {
    this.current = 'closed';
    clearTimeout(this.retryTimer);
    this.shell?.close();
    this.shell = undefined;
    this.client?.end();
    this.client = undefined;
  }

  /**
   * Runs `command` in the connection's long-lived shell (remote-shell.ts) and resolves its output;
   * rejects at once when there is no connection. Cheaper on the host than `exec`: no new session and
   * no login shell per call.
   */
  run(command: string, deadlineMs: number, signal?: AbortSignal): Promise<string> {
    if (this.current !== 'ready' || !this.shell) return Promise.reject(this.notConnected());
    return this.shell.run(command, deadlineMs, signal);
  }

  private notConnected(): SshNotConnectedError {
    const why = this.failure ? `: ${this.failure.message}` : '';
    return new SshNotConnectedError(`ssh ${this.target} not connected (${this.current})${why}`);
  }

  /** Runs `command` on the open connection; rejects at once when there is none. */
  exec(command: string, deadlineMs: number, signal?: AbortSignal): Promise<ExecResult> {
    const client = this.client;
    if (this.current !== 'ready' || !client) {
      const why = this.failure ? `: ${this.failure.message}` : '';
      return Promise.reject(
        new SshNotConnectedError(`ssh ${this.target} not connected (${this.current})${why}`),
      );
    }
    return new Promise<ExecResult>((resolve, reject) => {
      let channel: ClientChannel | undefined;
      let done = false;
      const finish = (err: Error | undefined, result?: ExecResult) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) {
          channel?.close();
          reject(err);
        } else resolve(result!);
      };
      const timer = setTimeout(
        () => finish(new Error(`ssh ${this.target}: command did not finish within ${deadlineMs} ms`)),
        deadlineMs,
      );
      const onAbort = () => finish(new Error(`ssh ${this.target}: command aborted`));
      signal?.addEventListener('abort', onAbort, { once: true });
      client.exec(command, (err, ch) => {
        if (err) return finish(err);
        channel = ch;
        if (done) return void ch.close();
        const out: Buffer[] = [];
        const errOut: Buffer[] = [];
        let code: number | null = null;
        ch.on('data', (d: Buffer) => out.push(d));
        ch.stderr.on('data', (d: Buffer) => errOut.push(d));
        ch.on('exit', (c: number | null) => (code = typeof c === 'number' ? c : null));
        ch.on('close', () =>
          finish(undefined, {
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(errOut).toString('utf8'),
            code,
          }),
        );
      });
    });
  }

  private connect(): void {
    if (this.current === 'closed') return;
    this.current = 'connecting';
    const client = new Client();
    this.client = client;
    let mismatch: SshHostKeyMismatchError | undefined;
    const config: ConnectConfig = {
      host: this.ssh.host,
      port: this.ssh.port,
      username: this.ssh.username,
      privateKey: this.ssh.privateKey,
      readyTimeout: this.options.connectTimeoutMs ?? 10_000,
      keepaliveInterval: this.options.keepaliveIntervalMs ?? 5_000,
      keepaliveCountMax: 3,
      hostVerifier: (key: Buffer) => {
        const presented = sha256Fingerprint(key);
        if (presented === this.expectedFingerprint) return true;
        mismatch = new SshHostKeyMismatchError(this.target, presented, this.expectedFingerprint);
        return false;
      },
      ...(this.ssh.passphrase !== undefined ? { passphrase: this.ssh.passphrase } : {}),
    };
    client.on('ready', () => {
      if (this.client !== client) return;
      this.current = 'ready';
      this.shell = new RemoteShell(client, `ssh ${this.target}`);
      this.attempt = 0;
      this.connects++;
      if (this.failure) this.logger.info({ ssh: this.target }, 'ssh connected again');
      this.failure = undefined;
    });
    client.on('error', (e: Error) => {
      if (this.client !== client) return;
      this.failure = mismatch ?? e;
    });
    client.on('close', () => {
      if (this.client !== client) return;
      this.client = undefined;
      this.shell?.close();
      this.shell = undefined;
      if (this.current === 'closed') return;
      this.failure ??= new Error('connection closed');
      const delay = backoffDelayMs(this.options.reconnect ?? SSH_RECONNECT, this.attempt++, Math.random());
      this.current = 'waiting';
      this.logger.warn(
        { ssh: this.target, err: this.failure.message, retryInMs: delay },
        'ssh connection lost',
      );
      this.retryTimer = setTimeout(() => this.connect(), delay);
      this.retryTimer.unref();
    });
    try {
      client.connect(config);
    } catch (e) {
      // A bad private key throws synchronously: surface it like any other failure and retry later.
      this.failure = e instanceof Error ? e : new Error(String(e));
      client.emit('close');
    }
  }
}
