/**
 * The status file (config `status_file`): the operator's status, rewritten whole each second under a
 * temporary name and renamed, so a reader never sees half a file.
 */
import { renameSync, writeFileSync } from 'node:fs';
import type { ControllerEvent } from './events.js';
import type { ControllerStatus } from './status.js';

export class StatusFileWriter {
  private lastError: string | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly tell: (e: ControllerEvent) => void) {}

  /** Writes `read()` to `file` every second from now on (none: stops writing); replaces any earlier schedule. */
  schedule(file: string | undefined, read: () => ControllerStatus): void {
    this.stop();
    if (file !== undefined) this.timer = setInterval(() => this.write(file, read()), 1000);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  write(file: string, status: ControllerStatus): void {
    const tmp = `${file}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, `${JSON.stringify(status, null, 2)}\n`);
      renameSync(tmp, file);
      this.lastError = null;
    } catch (e) {
      // A full disk or a missing directory must not stop the loop; told once per kind of error.
      const error = (e as Error).message;
      if (error !== this.lastError) this.tell({ type: 'status_file_error', file, error });
      this.lastError = error;
    }
  }
}
