/**
 * sipp as a real SIP peer: the UAS behind each backend and the UAC that offers load.
 * Statistics come from sipp's own `-trace_stat` CSV (cumulative counters of the last row).
 */
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { ExitInfo, ManagedProcess, ProcessGroup } from './processes.js';
import { isBound } from './sockets.js';
import { sleep } from '../util/sleep.js';

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
  /** `-trace_rtt -rtt_freq 1`: every call's response times, to `SippRun.rttFile`. */
  readonly traceRtt?: boolean;
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
  /** `<scenario>_<pid>_rtt.csv`, with traceRtt. */
  readonly rttFile: string | undefined;
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
  if (opts.traceRtt) args.push('-trace_rtt', '-rtt_freq', '1');
  args.push(...(opts.extraArgs ?? []));
  if (opts.remote) args.push(opts.remote);
  return args;
}

/**
 * sipp's `;`-separated trace files (statistics, counts): one record per row, by column name. With
 * `-fd 1` a row is written every second, so the rows are a time series of cumulative (C) and
 * periodic (P) counters.
 */
export function parseSippRows(csv: string): Record<string, string>[] {
  const lines = csv.split('\n').filter((l) => l.trim() !== '');
  const header = lines[0]?.split(';') ?? [];
  return lines.slice(1).map((line) => {
    const cells = line.split(';');
    const row: Record<string, string> = {};
    header.forEach((name, i) => {
      if (name) row[name] = cells[i] ?? '';
    });
    return row;
  });
}

/** Parses sipp's statistics file: the last row's cumulative (C) counters. */
export function parseSippStats(csv: string): SippStats {
  const raw = parseSippRows(csv).at(-1) ?? {};
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

/** The numeric per-message columns of one `-trace_counts` row (`0_INVITE_Sent`, `3_503_Recv`...). */
export function countsOfRow(row: Readonly<Record<string, string>>): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const [name, cell] of Object.entries(row)) {
    if (/^\d+_/.test(name) && /^\d+$/.test(cell)) counts[name] = Number(cell);
  }
  return counts;
}

/**
 * Parses sipp's `-trace_counts` file: the last row's numeric columns by name (cumulative counts per
 * scenario message, e.g. `0_INVITE_Sent`, `3_503_Recv`). Time columns and empty cells are left out.
 */
export function parseSippCounts(csv: string): Record<string, number> {
  return countsOfRow(parseSippRows(csv).at(-1) ?? {});
}

/** One line of sipp's `-trace_rtt` file: when (ms since sipp started) and the response time measured. */
export interface SippRtt {
  readonly atMs: number;
  readonly ms: number;
  /** Which response time (the scenario's `rtd="N"`). */
  readonly rtd: number;
}

/** Parses a `-trace_rtt` file (`Date_ms;response_time_ms;rtd_no`, one line per call with -rtt_freq 1). */
export function parseSippRtt(csv: string): SippRtt[] {
  const out: SippRtt[] = [];
  for (const line of csv.split('\n')) {
    const [at, ms, rtd] = line.split(';').map(Number);
    if (at === undefined || ms === undefined || rtd === undefined) continue;
    if (Number.isFinite(at) && Number.isFinite(ms) && Number.isFinite(rtd)) out.push({ atMs: at, ms, rtd });
  }
  return out;
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
  // sipp names these files itself, after the scenario and its pid, in its working directory.
  const traceFile = (kind: string) =>
    join(
      group.runDir,
      `${basename(opts.scenario.replace(/^builtin:/, '')).replace(/\.xml$/, '')}_${proc.pid}_${kind}.csv`,
    );
  const countsFile = opts.traceCounts ? traceFile('counts') : undefined;
  const rttFile = opts.traceRtt ? traceFile('rtt') : undefined;
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
    rttFile,
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
