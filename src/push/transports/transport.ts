/**
 * How a dispatcher list file reaches the LB host. The one promise every transport keeps: `write`
 * replaces the file whole or not at all, so a `dispatcher.reload` (ours, an operator's, or a
 * Kamailio restart) reads either the previous list or the new one, never a truncated mix. A write
 * that rejects has left the previous file in place, which is why the pusher then skips the reload.
 */
export interface ListFileTransport {
  /** Replaces the list file with `content`; rejects with a ListTransportError. */
  write(content: string): Promise<void>;
  /** Where the file goes, for logs and outcomes (`file:/etc/...`, `sftp://user@host:22/etc/...`). */
  describe(): string;
  /** Releases connections; a later write opens them again. */
  close(): Promise<void>;
}

export type ListTransportErrorKind =
  /** TCP/SSH connection could not be made or dropped mid-write. */
  | 'connect'
  /** The SSH host presented another key than the configured fingerprint. */
  | 'host_key'
  /** The SSH server refused our key. */
  | 'auth'
  /** The server lacks something atomic replacement needs (SFTP posix-rename). */
  | 'unsupported'
  /** A file operation failed (permissions, missing directory, disk full...). */
  | 'io'
  /** The write did not finish within its deadline. */
  | 'deadline';

export class ListTransportError extends Error {
  override readonly name = 'ListTransportError';
  constructor(
    readonly kind: ListTransportErrorKind,
    readonly target: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(`${target}: ${message}`, options);
  }
}

/** A temp name beside `target` (same directory, so the rename stays within one file system). */
export function tempNameFor(target: string, unique: string): string {
  const slash = target.lastIndexOf('/');
  return `${target.slice(0, slash + 1)}.${target.slice(slash + 1)}.${unique}.tmp`;
}
