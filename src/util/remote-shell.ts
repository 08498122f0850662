/**
 * One long-lived `/bin/sh` on an SSH connection, fed commands on its stdin.
 *
 * An SSH exec per sample makes the server start a session and the account's login shell each time,
 * start-up files included (1–2 s per exec on a machine whose root `.bashrc` runs `pyenv init`). A
 * collector that watches a loaded SIP server must not add that load, so the shell is started once and
 * each command costs only its own forks. Each command's output ends with a line carrying a random
 * token; a command that overruns its deadline leaves the shell in an unknown state, so the shell is
 * thrown away and the next command starts a new one.
 */
import { randomBytes } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import type { Client, ClientChannel } from 'ssh2';

const DONE = '@@sipweigh-done';

interface Running {
  readonly marker: string;
  output: string;
  resolve(output: string): void;
  reject(e: Error): void;
}

export class RemoteShell {
  private channel: ClientChannel | undefined;
  private opening: Promise<ClientChannel> | undefined;
  private running: Running | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly client: Client,
    private readonly label: string,
  ) {}

  /**
   * Runs `command` (one or more shell lines) and resolves its stdout. Commands run one at a time in
   * call order; `deadlineMs` counts from the call, waiting included.
   */
  run(command: string, deadlineMs: number, signal?: AbortSignal): Promise<string> {
    const started = performance.now();
    const turn = this.queue.then(() =>
      this.runNow(command, deadlineMs - (performance.now() - started), signal),
    );
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** Whether the shell is running (its start, the account's login shell, is behind us). */
  get started(): boolean {
    return this.channel !== undefined;
  }

  close(): void {
    this.closed = true;
    this.discard(new Error(`${this.label}: shell closed`));
  }

  private async runNow(command: string, remainingMs: number, signal?: AbortSignal): Promise<string> {
    if (this.closed) throw new Error(`${this.label}: shell closed`);
    if (signal?.aborted) throw new Error(`${this.label}: command aborted`);
    if (remainingMs <= 0) throw new Error(`${this.label}: no time left for the command`);
    const deadline = performance.now() + remainingMs;
    const channel = await this.withDeadline(this.open(), remainingMs, 'shell did not start');
    const marker = `${DONE} ${randomBytes(8).toString('hex')}`;
    return new Promise<string>((resolve, reject) => {
      const finish = (err: Error | undefined, output?: string) => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.running = undefined;
        if (err) {
          // Output of an unfinished command could still arrive: never reuse this shell.
          this.discard(err);
          reject(err);
        } else resolve(output ?? '');
      };
      const timer = setTimeout(
        () => finish(new Error(`${this.label}: command did not finish within ${Math.round(remainingMs)} ms`)),
        Math.max(0, deadline - performance.now()),
      );
      const onAbort = () => finish(new Error(`${this.label}: command aborted`));
      signal?.addEventListener('abort', onAbort, { once: true });
      this.running = { marker, output: '', resolve: (o) => finish(undefined, o), reject: (e) => finish(e) };
      // A newline first, so the marker starts a line even after output without a final newline.
      channel.write(`${command}\nprintf '\\n%s\\n' '${marker}'\n`);
    });
  }

  private withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          this.discard(new Error(`${this.label}: ${what}`));
          reject(new Error(`${this.label}: ${what} within ${Math.round(ms)} ms`));
        }, ms);
      }),
    ]).finally(() => clearTimeout(timer));
  }

  private open(): Promise<ClientChannel> {
    if (this.channel) return Promise.resolve(this.channel);
    this.opening ??= new Promise<ClientChannel>((resolve, reject) => {
      // The account's shell runs this once (start-up files included), then becomes a plain sh.
      this.client.exec('exec /bin/sh', (err, ch) => {
        this.opening = undefined;
        if (err) return reject(err);
        if (this.closed) {
          ch.close();
          return reject(new Error(`${this.label}: shell closed`));
        }
        const decoder = new StringDecoder('utf8');
        ch.on('data', (d: Buffer) => this.onOutput(decoder.write(d)));
        ch.stderr.resume(); // sections carry their own stderr; the shell's own is not ours to read
        ch.on('close', () => {
          if (this.channel === ch) this.channel = undefined;
          this.running?.reject(new Error(`${this.label}: shell exited`));
        });
        this.channel = ch;
        resolve(ch);
      });
    });
    return this.opening;
  }

  private onOutput(text: string): void {
    const r = this.running;
    if (!r) return; // output of a command we gave up on: its shell is being discarded
    r.output += text;
    const end = r.output.indexOf(`\n${r.marker}\n`);
    if (end < 0) return;
    // The newline before the marker is the one the printf added.
    r.resolve(r.output.slice(0, end));
  }

  private discard(reason: Error): void {
    const ch = this.channel;
    this.channel = undefined;
    this.running?.reject(reason);
    ch?.close();
  }
}
