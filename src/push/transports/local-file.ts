/**
 * The list file on this host (controller beside the LB): temp file in the same directory, fsync,
 * rename over the target, fsync the directory. rename(2) is atomic for readers; the two fsyncs make
 * the new list, not an empty or old inode, what Kamailio finds after a power cut.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, rename, stat, unlink } from 'node:fs/promises';
import { dirname, isAbsolute } from 'node:path';
import { ListTransportError, tempNameFor, type ListFileTransport } from './transport.js';

export interface LocalListFileOptions {
  /** Absolute path of Kamailio's `list_file`. */
  readonly path: string;
  /** Mode of a newly created file (default 0644: Kamailio often runs as another user). */
  readonly mode?: number;
}

export class LocalListFile implements ListFileTransport {
  private readonly path: string;
  private readonly mode: number;

  constructor(options: LocalListFileOptions) {
    if (!isAbsolute(options.path)) throw new Error(`list file path must be absolute, got ${options.path}`);
    this.path = options.path;
    this.mode = options.mode ?? 0o644;
  }

  describe(): string {
    return `file:${this.path}`;
  }

  async write(content: string): Promise<void> {
    const temp = tempNameFor(this.path, `${process.pid}-${randomBytes(4).toString('hex')}`);
    try {
      // Keep the mode an operator gave the existing file.
      const mode = await stat(this.path).then(
        (s) => s.mode & 0o7777,
        () => this.mode,
      );
      const fh = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, mode);
      try {
        await fh.writeFile(content, 'utf8');
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, this.path);
    } catch (e) {
      await unlink(temp).catch(() => undefined);
      throw new ListTransportError('io', this.describe(), (e as Error).message, { cause: e });
    }
    await this.syncDirectory();
  }

  async close(): Promise<void> {}

  /** The rename is done (readers see the new list); a failing directory fsync only costs durability. */
  private async syncDirectory(): Promise<void> {
    const dir = await open(dirname(this.path), constants.O_RDONLY).catch(() => undefined);
    if (!dir) return;
    try {
      await dir.sync();
    } catch {
      // Some file systems refuse fsync on a directory; the list is already in place.
    } finally {
      await dir.close();
    }
  }
}
