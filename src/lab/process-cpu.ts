/**
 * CPU time of a process tree, e.g. a Kamailio instance: the main process and every worker it forked.
 * Used by the data-plane benchmark to charge the LB's CPU per call; the parsing is pure, the reading
 * a thin shell.
 *
 * Per process: the scheduler's exact run time from /proc/<pid>/schedstat (nanoseconds) when the
 * kernel provides it, else utime + stime from /proc/<pid>/stat (clock ticks of 10 ms: a delta over
 * a few hundred ms of work across several workers would be off by tens of per cent).
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

export interface PidStat {
  readonly pid: number;
  readonly ppid: number;
  /** Clock ticks in user mode (field 14). */
  readonly utime: number;
  /** Clock ticks in kernel mode (field 15). */
  readonly stime: number;
}

/**
 * Parses one /proc/<pid>/stat line. The command name (field 2) is in parentheses and may itself
 * contain spaces and parentheses, so fields are counted from the last ')'.
 */
export function parsePidStat(text: string): PidStat {
  const close = text.lastIndexOf(')');
  const open = text.indexOf('(');
  if (open < 1 || close < open) throw new Error(`not a /proc/<pid>/stat line: ${text.slice(0, 80)}`);
  const pid = Number(text.slice(0, open).trim());
  // After ')': state(3) ppid(4) pgrp(5) session(6) tty_nr(7) tpgid(8) flags(9) minflt(10) cminflt(11)
  // majflt(12) cmajflt(13) utime(14) stime(15)
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  const field = (n: number) => Number(rest[n - 3]);
  const parsed = { pid, ppid: field(4), utime: field(14), stime: field(15) };
  if (!Object.values(parsed).every((v) => Number.isInteger(v) && v >= 0)) {
    throw new Error(`malformed /proc/<pid>/stat line: ${text.slice(0, 120)}`);
  }
  return parsed;
}

/** First field of /proc/<pid>/schedstat: time spent on a CPU, nanoseconds. */
export function parseSchedstat(text: string): number {
  const ns = Number(text.trim().split(/\s+/)[0]);
  if (!Number.isFinite(ns) || ns < 0)
    throw new Error(`malformed /proc/<pid>/schedstat: ${text.slice(0, 80)}`);
  return ns;
}

export interface ProcessCpu {
  readonly pid: number;
  readonly ppid: number;
  readonly cpuNs: number;
}

/** CPU of the root and all its descendants among `all` (processes that exited are not counted). */
export function treeCpu(rootPid: number, all: readonly ProcessCpu[]): { cpuNs: number; processes: number } {
  const children = new Map<number, ProcessCpu[]>();
  for (const p of all) {
    const list = children.get(p.ppid) ?? [];
    list.push(p);
    children.set(p.ppid, list);
  }
  const root = all.find((p) => p.pid === rootPid);
  if (!root) return { cpuNs: 0, processes: 0 };
  let cpuNs = 0;
  let processes = 0;
  const queue: ProcessCpu[] = [root];
  for (let p = queue.shift(); p; p = queue.shift()) {
    cpuNs += p.cpuNs;
    processes += 1;
    queue.push(...(children.get(p.pid) ?? []));
  }
  return { cpuNs, processes };
}

function readProcessCpu(pid: string): ProcessCpu {
  const stat = parsePidStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  let cpuNs: number;
  try {
    cpuNs = parseSchedstat(readFileSync(`/proc/${pid}/schedstat`, 'utf8'));
  } catch {
    cpuNs = ((stat.utime + stat.stime) * 1e9) / clockTicksPerSecond();
  }
  return { pid: stat.pid, ppid: stat.ppid, cpuNs };
}

function readAllProcessCpu(): ProcessCpu[] {
  const out: ProcessCpu[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      out.push(readProcessCpu(name));
    } catch {
      /* exited between readdir and read, or unreadable: not ours */
    }
  }
  return out;
}

let clockTicks: number | undefined;

/** USER_HZ, the unit of utime/stime (100 on every mainstream Linux). */
export function clockTicksPerSecond(): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
    const n = Number(r.stdout?.trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/** CPU milliseconds used so far by `rootPid` and its descendants. */
export function processTreeCpuMs(rootPid: number): { cpuMs: number; processes: number } {
  const { cpuNs, processes } = treeCpu(rootPid, readAllProcessCpu());
  return { cpuMs: cpuNs / 1e6, processes };
}
