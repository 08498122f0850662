/**
 * SSH, the one implementation: `openSsh` makes one connection with the host key pinned (used as is
 * by the SFTP list transport, which reconnects at its caller's pace), and `SshSession` keeps one
 * open to a backend host and re-establishes it with backoff when it drops (the agentless probe).
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
import { RemoteShell } from './remote-shell.js';

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

export interface SshSessionOptions extends SshConnectOptions {
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

/** The server refused our key (or the private key could not be used at all). */
export class SshAuthError extends Error {
  override readonly name = 'SshAuthError';
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

export interface SshConnectOptions {
  readonly connectTimeoutMs?: number;
  /** Liveness check of an idle connection (ssh keepalive), so a dead peer is noticed without traffic. */
  readonly keepaliveIntervalMs?: number;
}

export interface SshOpening {
  /** The connection; `end()` it to give up (also while connecting). */
  readonly client: Client;
  /**
   * Resolves once authenticated; rejects with SshHostKeyMismatchError, SshAuthError or the
   * transport's error (refused, timed out, closed) if it never got there.
   */
  readonly ready: Promise<void>;
}

/**
 * Opens one SSH connection to `target`, pinned to its host fingerprint. `onClosed` is told, once,
 * why a connection that was ready has ended (never for one that failed to open: `ready` says so).
 */
export function openSsh(
  target: SshTarget,
  options: SshConnectOptions = {},
  onClosed: (why: Error) => void = () => undefined,
): SshOpening {
  const name = `${target.username}@${target.host}:${target.port}`;
  const expected = normaliseFingerprint(target.hostFingerprint);
  const client = new Client();
  let mismatch: SshHostKeyMismatchError | undefined;
  let failure: Error | undefined;
  let opened = false;
  const ready = new Promise<void>((resolve, reject) => {
    client.on('ready', () => {
      opened = true;
      resolve();
    });
    client.on('error', (e: Error & { level?: string }) => {
      failure ??=
        mismatch ??
        (e.level === 'client-authentication'
          ? new SshAuthError(`ssh ${name}: key refused: ${e.message}`, { cause: e })
          : e);
    });
    client.on('close', () => {
      const why = failure ?? mismatch ?? new Error(`ssh ${name}: connection closed`);
      if (opened) onClosed(why);
      else reject(why);
    });
    try {
      client.connect({
        host: target.host,
        port: target.port,
        username: target.username,
        privateKey: target.privateKey,
        ...(target.passphrase !== undefined ? { passphrase: target.passphrase } : {}),
        readyTimeout: options.connectTimeoutMs ?? 10_000,
        keepaliveInterval: options.keepaliveIntervalMs ?? 5_000,
        keepaliveCountMax: 3,
        hostVerifier: (key: Buffer) => {
          const presented = sha256Fingerprint(key);
          if (presented === expected) return true;
          mismatch = new SshHostKeyMismatchError(name, presented, expected);
          return false;
        },
      } satisfies ConnectConfig);
    } catch (e) {
      // A malformed private key throws synchronously.
      reject(new SshAuthError(`ssh ${name}: ${(e as Error).message}`, { cause: e }));
    }
  });
  // A caller that only ends the client must not leave an unhandled rejection behind.
  ready.catch(() => undefined);
  return { client, ready };
}

export type SshSessionState = 'connecting' | 'ready' | 'waiting' | 'closed';

export class SshSession {
  readonly target: string;
  private client: Client | undefined;
  private shell: RemoteShell | undefined;
  private attemptDone: Promise<void> = Promise.resolve();
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
    // Checked now: a malformed fingerprint is a configuration error, not a reason to retry.
    normaliseFingerprint(ssh.hostFingerprint);
  }

  get state(): SshSessionState {
    return this.current;
  }

  /** Why the last connection attempt failed or the connection dropped (cleared once connected). */
  get lastError(): Error | undefined {
    return this.failure;
  }

  /** Successful connections so far (a reconnect raises it). */
  /** Whether the long-lived shell of the current connection is running (its first command has run). */
  get shellStarted(): boolean {
    return this.shell?.started ?? false;
  }

  /** Resolves once the connection attempt under way (if any) has succeeded or failed. */
  settled(): Promise<void> {
    return this.attemptDone;
  }

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
    const { client, ready } = openSsh(this.ssh, this.options, (why) => this.lost(client, why));
    this.client = client;
    this.attemptDone = ready.then(
      () => undefined,
      () => undefined,
    );
    ready.then(
      () => {
        if (this.client !== client) return;
        this.current = 'ready';
        this.shell = new RemoteShell(client, `ssh ${this.target}`);
        this.attempt = 0;
        this.connects++;
        if (this.failure) this.logger.info({ ssh: this.target }, 'ssh connected again');
        this.failure = undefined;
      },
      (e: Error) => this.lost(client, e),
    );
  }

  /** The connection failed to open or dropped: retry after a backoff (unless closed). */
  private lost(client: Client, why: Error): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.shell?.close();
    this.shell = undefined;
    if (this.current === 'closed') return;
    this.failure = why;
    const delay = backoffDelayMs(this.options.reconnect ?? SSH_RECONNECT, this.attempt++, Math.random());
    this.current = 'waiting';
    this.logger.warn({ ssh: this.target, err: why.message, retryInMs: delay }, 'ssh connection lost');
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.retryTimer.unref();
  }
}
