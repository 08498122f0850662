/**
 * Child processes that are always stopped by PID.
 *
 * Every process is started in its own process group (detached) with its output in a file, so that
 * - it can be stopped together with the children it forks (Kamailio's workers) by signalling -PID,
 *   also when its parent is gone (the lab outlives the `sipweigh lab up` command that started it);
 * - nothing depends on a pipe to the parent staying open.
 */
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sleep } from '../util/sleep.js';

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
  /** File that receives stdout and stderr; default `<runDir>/<name>.log`. */
  readonly logFile?: string;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  readonly command: readonly string[];
  readonly logFile: string;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  isRunning(): boolean;
  /** SIGTERM to the process group, then SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<ExitInfo>;
  /** The last `lines` lines of its log, for error messages. */
  tail(lines?: number): string;
}

/** True while a process with this PID exists (and is not a zombie we could reap). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3 is the state; a zombie has finished and only waits for its parent.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z';
  } catch {
    return false;
  }
}

export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

/**
 * Stops a process (and its group) that may not be our child: used by `lab down` on PIDs read back
 * from the lab's state file. Returns true when it is gone.
 */
export async function stopPid(pid: number, graceMs = 5000): Promise<boolean> {
  if (!pidAlive(pid)) return true;
  signalGroup(pid, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) return true;
    await sleep(50);
  }
  signalGroup(pid, 'SIGKILL');
  for (let i = 0; i < 40 && pidAlive(pid); i++) await sleep(50);
  return !pidAlive(pid);
}

function tailOf(file: string, lines: number): string {
  try {
    const text = readFileSync(file, 'utf8');
    return text
      .split('\n')
      .slice(-lines - 1)
      .join('\n')
      .trimEnd();
  } catch {
    return '';
  }
}

const live = new Set<ManagedProcess>();
const unrefs = new WeakMap<ManagedProcess, () => void>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last line of defence when a test runner or script dies: no orphan Kamailio or sipp survives us
  // unless it was explicitly released (the lab's daemons).
  process.on('exit', () => {
    for (const p of live) signalGroup(p.pid, 'SIGKILL');
  });
}

/**
 * A set of processes that are started together and stopped together.
 * `stopAll()` is idempotent and safe to call from `after()` hooks whatever happened before.
 */
export class ProcessGroup {
  readonly runDir: string;
  private readonly members: ManagedProcess[] = [];

  constructor(runDir: string) {
    this.runDir = runDir;
    mkdirSync(runDir, { recursive: true });
    installExitHook();
  }

  get processes(): readonly ManagedProcess[] {
    return this.members;
  }

  spawn(name: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): ManagedProcess {
    const logFile = opts.logFile ?? join(this.runDir, `${name}.log`);
    const fd = openSync(logFile, 'a');
    let child;
    try {
      child = spawn(cmd, args, {
        cwd: opts.cwd,
        env: opts.env ?? process.env,
        detached: true,
        stdio: ['ignore', fd, fd],
      });
    } finally {
      closeSync(fd);
    }
    const pid = child.pid;
    if (pid === undefined) throw new Error(`could not start ${name}: ${cmd} ${args.join(' ')}`);
    let running = true;
    const exited = new Promise<ExitInfo>((resolve) => {
      child.once('exit', (code, signal) => {
        running = false;
        resolve({ code, signal });
      });
      child.once('error', () => {
        running = false;
        resolve({ code: null, signal: null });
      });
    });
    const proc: ManagedProcess = {
      name,
      pid,
      command: [cmd, ...args],
      logFile,
      exited,
      isRunning: () => running,
      tail: (lines = 20) => tailOf(logFile, lines),
      stop: async (graceMs = 5000) => {
        if (running) {
          signalGroup(pid, 'SIGTERM');
          const timer = setTimeout(() => signalGroup(pid, 'SIGKILL'), graceMs);
          await exited;
          clearTimeout(timer);
        }
        // Kamailio's workers may outlive a killed main process for a moment: clear the group too.
        signalGroup(pid, 'SIGKILL');
        live.delete(proc);
        return exited;
      },
    };
    void exited.then(() => live.delete(proc));
    unrefs.set(proc, () => child.unref());
    live.add(proc);
    this.members.push(proc);
    return proc;
  }

  /** Lets a process outlive this Node process (the lab's daemons); it must then be stopped by PID. */
  release(proc: ManagedProcess): void {
    live.delete(proc);
    unrefs.get(proc)?.();
  }

  async stopAll(graceMs = 5000): Promise<void> {
    // Reverse order: clients first, then the servers they talk to.
    const members = [...this.members].reverse();
    await Promise.all(members.map((p) => p.stop(graceMs)));
  }
}
