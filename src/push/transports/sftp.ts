/**
 * The list file on an LB host that is not the controller's, written over SFTP (ssh2).
 *
 * Why SFTP and not a database the LB reads: it adds no dependency to the LB (no DB server, no
 * db_* module, no schema to migrate) and no new credential type: operators already reach their SIP
 * hosts over SSH, and ssh2 is already ours (the agentless collector). The file stays the one
 * source Kamailio reloads from, on a restart too.
 *
 * Atomicity: the list goes to a temp file in the target's directory, is flushed with the
 * `fsync@openssh.com` extension when the server offers it, and is moved over the target with
 * `posix-rename@openssh.com` (rename(2) on the server). Plain SFTP v3 RENAME refuses an existing
 * target on OpenSSH, and remove-then-rename would leave a window with no list at all, so a server
 * without posix-rename is refused ('unsupported'). SFTP cannot fsync a directory: after a power cut
 * of the LB host the rename may be lost, which the controller's reconcile repairs.
 *
 * The connection is kept open between writes and opened again on the next write after it dropped;
 * the pacing of those attempts is the caller's backoff (NodeSync), not a timer here. The connection
 * is util/ssh-session.ts's `openSsh`, the one SSH implementation: the host key is pinned to a SHA256
 * fingerprint as `ssh-keygen -lf` prints it, a mismatch is a `host_key` failure.
 */
import { randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import type { Client, SFTPWrapper } from 'ssh2';
import {
  normaliseFingerprint,
  openSsh,
  SshAuthError,
  SshHostKeyMismatchError,
  type SshTarget,
} from '../../util/ssh-session.js';
import { ListTransportError, tempNameFor, type ListFileTransport } from './transport.js';

export interface SftpListFileOptions {
  readonly ssh: SshTarget;
  /** Absolute path of Kamailio's `list_file` on the LB host. */
  readonly path: string;
  /** Mode of the written file (default 0644: Kamailio often runs as another user). */
  readonly mode?: number;
  /** Deadline of one write, connecting included (default 10 s). */
  readonly deadlineMs?: number;
  readonly connectTimeoutMs?: number;
  /** SSH keepalive, so a dead peer is noticed between writes (default 5 s). */
  readonly keepaliveIntervalMs?: number;
}

interface Connection {
  readonly client: Client;
  readonly sftp: SFTPWrapper;
  /** Set when the SSH connection or the SFTP channel closed. */
  readonly lost: { value: boolean };
}

/** What ssh2 answers pending SFTP requests with when the channel goes away under them. */
const CHANNEL_GONE = 'No response from server';

const CHUNK = 32 * 1024;

export class SftpListFile implements ListFileTransport {
  private readonly path: string;
  private readonly target: string;
  private connection: Promise<Connection> | undefined;
  private connects = 0;

  constructor(private readonly options: SftpListFileOptions) {
    if (!posix.isAbsolute(options.path))
      throw new Error(`list file path must be absolute, got ${options.path}`);
    this.path = options.path;
    // A malformed fingerprint is a configuration error, said at start-up rather than at each write.
    normaliseFingerprint(options.ssh.hostFingerprint);
    this.target = `sftp://${options.ssh.username}@${options.ssh.host}:${options.ssh.port}${options.path}`;
  }

  describe(): string {
    return this.target;
  }

  /** SSH connections made so far (a reconnect after a drop raises it). */
  get connections(): number {
    return this.connects;
  }

  async write(content: string): Promise<void> {
    const deadlineMs = this.options.deadlineMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // A stalled server must not hold the next write: drop the connection, reconnect next time.
        this.drop();
        reject(
          new ListTransportError('deadline', this.target, `write did not finish within ${deadlineMs} ms`),
        );
      }, deadlineMs);
    });
    try {
      await Promise.race([this.writeOn(await Promise.race([this.connect(), deadline]), content), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    this.drop();
  }

  private drop(): void {
    const c = this.connection;
    this.connection = undefined;
    c?.then((conn) => conn.client.end()).catch(() => undefined);
  }

  private connect(): Promise<Connection> {
    this.connection ??= this.open();
    return this.connection;
  }

  private open(): Promise<Connection> {
    const lost = { value: false };
    const pending = (async (): Promise<Connection> => {
      const forget = () => {
        lost.value = true;
        if (this.connection === pending) this.connection = undefined;
      };
      const { client, ready } = openSsh(this.options.ssh, this.options, forget);
      try {
        await ready;
      } catch (e) {
        forget();
        if (e instanceof SshHostKeyMismatchError)
          throw new ListTransportError('host_key', this.target, e.message, { cause: e });
        if (e instanceof SshAuthError)
          throw new ListTransportError('auth', this.target, e.message, { cause: e });
        throw new ListTransportError('connect', this.target, (e as Error).message, { cause: e });
      }
      return new Promise<Connection>((resolve, reject) => {
        client.sftp((err, sftp) => {
          if (err) {
            forget();
            client.end();
            return reject(
              new ListTransportError('connect', this.target, `no SFTP subsystem: ${err.message}`, {
                cause: err,
              }),
            );
          }
          this.connects++;
          sftp.on('close', () => {
            forget();
            client.end();
          });
          resolve({ client, sftp, lost });
        });
      });
    })();
    return pending;
  }

  private async writeOn(conn: Connection, content: string): Promise<void> {
    const { sftp } = conn;
    const temp = tempNameFor(this.path, `${process.pid}-${randomBytes(4).toString('hex')}`);
    const io = (what: string) => (e: unknown) => {
      const message = (e as Error).message;
      // A request cut off by a dropped connection is a connection failure, not a file error.
      const kind = conn.lost.value || message === CHANNEL_GONE ? 'connect' : 'io';
      if (kind === 'connect') this.drop();
      throw new ListTransportError(kind, this.target, `${what}: ${message}`, { cause: e });
    };
    const handle = await call<Buffer>((cb) =>
      sftp.open(temp, 'wx', { mode: this.options.mode ?? 0o644 }, cb),
    ).catch(io(`create ${temp}`));
    try {
      try {
        const data = Buffer.from(content, 'utf8');
        for (let off = 0; off < data.length; off += CHUNK) {
          const len = Math.min(CHUNK, data.length - off);
          await call<void>((cb) => sftp.write(handle, data, off, len, off, cb)).catch(io(`write ${temp}`));
        }
        if (hasExtension(sftp, 'fsync@openssh.com')) {
          await call<void>((cb) => sftp.ext_openssh_fsync(handle, cb)).catch(io(`fsync ${temp}`));
        }
      } finally {
        await call<void>((cb) => sftp.close(handle, cb)).catch(io(`close ${temp}`));
      }
      if (!hasExtension(sftp, 'posix-rename@openssh.com')) {
        throw new ListTransportError(
          'unsupported',
          this.target,
          'the SFTP server lacks posix-rename@openssh.com: the list cannot be replaced atomically',
        );
      }
      await call<void>((cb) => sftp.ext_openssh_rename(temp, this.path, cb)).catch(
        io(`rename to ${this.path}`),
      );
    } catch (e) {
      await call<void>((cb) => sftp.unlink(temp, cb)).catch(() => undefined);
      throw e;
    }
  }
}

/** ssh2 keeps the server's advertised extensions in a private field; its methods throw without them. */
function hasExtension(sftp: SFTPWrapper, name: string): boolean {
  const ext = (sftp as unknown as { _extensions?: Record<string, string> })._extensions;
  return ext?.[name] === '1';
}

function call<T>(fn: (cb: (err: Error | undefined | null, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    try {
      fn((err, value) => (err ? reject(err) : resolve(value)));
    } catch (e) {
      reject(e as Error);
    }
  });
}
