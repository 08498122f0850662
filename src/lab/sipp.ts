/**
 * sipp as a real SIP peer: the UAS behind each backend and the UAC that offers load.
 * Statistics come from sipp's own `-trace_stat` CSV (cumulative counters of the last row).
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ExitInfo, ManagedProcess, ProcessGroup } from './processes.js';
import { isBound } from './sockets.js';

export type SippTransport = 'u1' | 'un' | 't1' | 'tn';

export interface SippOptions {
  readonly name: string;
  /** A scenario file path, or one of sipp's built-ins as `builtin:uac` / `builtin:uas`. */
  readonly scenario: string;
  readonly localIp: string;
  readonly localPort: number;
  /** `ip:port` of the peer (UAC only). */
  readonly remote?: string;
  readonly transport?: SippTransport;
  /** Calls per `ratePeriodMs` (default per second). */
  readonly rate?: number;
  readonly ratePeriodMs?: number;
  /** Stop after this many calls (UAC). */
  readonly maxCalls?: number;
  /** Maximum simultaneous calls. */
  readonly concurrency?: number;
  /** Hard bound on the run, in seconds: sipp stops itself (every load loop is bounded). */
  readonly timeoutS: number;
  /** `-set NAME VALUE` scenario variables. */
  readonly vars?: Readonly<Record<string, string | number>>;
  /** `-trace_msg`: every message sipp sent and received, to `<runDir>/<name>_messages.log`. */
  readonly traceMessages?: boolean;
  /**
   * `-trace_counts`: how often each scenario message was sent/received, e.g. `3_503_Recv` (index,
   * message, event), for scenarios with several outcomes; parsed into `SippResult.counts`.
   */
  readonly traceCounts?: boolean;
  readonly extraArgs?: readonly string[];
}

export interface SippStats {
  readonly created: number;
  readonly successful: number;
  readonly failed: number;
  readonly retransmissions: number;
  readonly unexpectedMessages: number;
  readonly deadCallMessages: number;
  readonly outOfCallMessages: number;
  readonly incomingCalls: number;
  /** Every column of the last row, by sipp's column name. */
  readonly raw: Readonly<Record<string, string>>;
}

export interface SippRun {
  readonly process: ManagedProcess;
  readonly statsFile: string;
  readonly messagesFile: string | undefined;
  /** sipp names it itself: `<scenario>_<pid>_counts.csv` in its working directory (the run dir). */
  readonly countsFile: string | undefined;
  /** Waits for sipp to end by itself (UAC) and parses its statistics. */
  done(): Promise<SippResult>;
}

export interface SippResult {
  readonly exit: ExitInfo;
  readonly stats: SippStats;
  /** Last row of the `-trace_counts` file by column (`3_503_Recv`...); empty without traceCounts. */
  readonly counts: Readonly<Record<string, number>>;
}

export function sippArgs(opts: SippOptions, statsFile: string, messagesFile?: string): string[] {
  const args: string[] = [];
  if (opts.scenario.startsWith('builtin:')) args.push('-sn', opts.scenario.slice('builtin:'.length));
  else args.push('-sf', opts.scenario);
  args.push('-i', opts.localIp, '-p', String(opts.localPort), '-t', opts.transport ?? 'u1');
  args.push('-nostdin', '-timeout', `${opts.timeoutS}s`, '-timeout_error');
  args.push('-trace_stat', '-stf', statsFile, '-fd', '1');
  if (opts.rate !== undefined) args.push('-r', String(opts.rate));
  if (opts.ratePeriodMs !== undefined) args.push('-rp', String(opts.ratePeriodMs));
  if (opts.maxCalls !== undefined) args.push('-m', String(opts.maxCalls));
  if (opts.concurrency !== undefined) args.push('-l', String(opts.concurrency));
  for (const [k, v] of Object.entries(opts.vars ?? {})) args.push('-set', k, String(v));
  if (messagesFile) args.push('-trace_msg', '-message_file', messagesFile);
  if (opts.traceCounts) args.push('-trace_counts');
  args.push(...(opts.extraArgs ?? []));
  if (opts.remote) args.push(opts.remote);
  return args;
}

/** Parses sipp's `;`-separated statistics file: the last data row, cumulative (C) counters. */
export function parseSippStats(csv: string): SippStats {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0]?.split(';') ?? [];
  const last = lines.length > 1 ? (lines[lines.length - 1] ?? '').split(';') : [];
  const raw: Record<string, string> = {};
  header.forEach((name, i) => {
    if (name) raw[name] = last[i] ?? '';
  });
  const num = (col: string): number => {
    const n = Number(raw[col]);
    return Number.isFinite(n) ? n : 0;
  };
  return {
    created: num('TotalCallCreated'),
    successful: num('SuccessfulCall(C)'),
    failed: num('FailedCall(C)'),
    retransmissions: num('Retransmissions(C)'),
    unexpectedMessages: num('FailedUnexpectedMessage(C)'),
    deadCallMessages: num('DeadCallMsgs(C)'),
    outOfCallMessages: num('OutOfCallMsgs(C)'),
    incomingCalls: num('IncomingCall(C)'),
    raw,
  };
}

/**
 * Parses sipp's `-trace_counts` file: the last row's numeric columns by name (cumulative counts per
 * scenario message, e.g. `0_INVITE_Sent`, `3_503_Recv`). Time columns and empty cells are left out.
 */
export function parseSippCounts(csv: string): Record<string, number> {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0]?.split(';') ?? [];
  const last = lines.length > 1 ? (lines[lines.length - 1] ?? '').split(';') : [];
  const counts: Record<string, number> = {};
  header.forEach((name, i) => {
    const cell = last[i] ?? '';
    if (!/^\d+_/.test(name) || !/^\d+$/.test(cell)) return;
    counts[name] = Number(cell);
  });
  return counts;
}

function readCounts(file: string | undefined): Record<string, number> {
  if (!file) return {};
  try {
    return parseSippCounts(readFileSync(file, 'utf8'));
  } catch {
    return {}; /* sipp died before writing it */
  }
}

export function readSippStats(statsFile: string): SippStats {
  let csv = '';
  try {
    csv = readFileSync(statsFile, 'utf8');
  } catch {
    /* sipp died before its first row: all counters zero */
  }
  return parseSippStats(csv);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function sippBinary(): string {
  return process.env.SIPWEIGH_SIPP ?? 'sipp';
}

/** Starts sipp; for a UAS, waits until its socket is bound so calls can be sent at once. */
export async function startSipp(group: ProcessGroup, opts: SippOptions): Promise<SippRun> {
  const statsFile = join(group.runDir, `${opts.name}_stats.csv`);
  const messagesFile = opts.traceMessages ? join(group.runDir, `${opts.name}_messages.log`) : undefined;
  const proc = group.spawn(opts.name, sippBinary(), sippArgs(opts, statsFile, messagesFile), {
    cwd: group.runDir,
  });
  const countsFile = opts.traceCounts
    ? join(
        group.runDir,
        `${basename(opts.scenario.replace(/^builtin:/, '')).replace(/\.xml$/, '')}_${proc.pid}_counts.csv`,
      )
    : undefined;
  const transport = opts.transport?.startsWith('t') ? 'tcp' : 'udp';
  if (!opts.remote) {
    const deadline = Date.now() + 10000;
    while (!(await isBound({ transport, address: opts.localIp, port: opts.localPort }))) {
      if (!proc.isRunning()) throw new Error(`sipp ${opts.name} exited during start-up:\n${proc.tail(20)}`);
      if (Date.now() > deadline) {
        await proc.stop();
        throw new Error(`sipp ${opts.name} did not bind ${opts.localIp}:${opts.localPort}`);
      }
      await sleep(50);
    }
  }
  return {
    process: proc,
    statsFile,
    messagesFile,
    countsFile,
    done: async () => {
      const exit = await proc.exited;
      return { exit, stats: readSippStats(statsFile), counts: readCounts(countsFile) };
    },
  };
}

/** Runs a UAC to completion (bounded by `timeoutS`) and returns its statistics. */
export async function runSippClient(group: ProcessGroup, opts: SippOptions): Promise<SippResult> {
  const run = await startSipp(group, opts);
  const guard = setTimeout(() => void run.process.stop(), (opts.timeoutS + 15) * 1000);
  try {
    return await run.done();
  } finally {
    clearTimeout(guard);
  }
}
