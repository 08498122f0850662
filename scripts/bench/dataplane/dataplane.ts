/**
 * Data-plane benchmark: the same Kamailio LB (src/lab/kamailio/lb.cfg) relaying calls transparently
 * (send_udp, no Via: it sees only the INVITE) and statefully (t_relay with SW_STATEFUL: Via added,
 * a transaction per INVITE, every reply through it), side by side in one run, at the same offered
 * rates, in front of the same two backends and UASes on 127.0.2.x.
 *
 *   npm run bench -- dataplane [--quick] [--rates 150,300] [--seconds 20]
 *
 * Per mode and rate: successful calls/s (successful calls over the client's wall time), and the
 * LB's CPU per call: the CPU time of every LB process (the main process and the workers it forked,
 * found by parent PID in /proc; exact run time from /proc/<pid>/schedstat, else utime+stime from
 * /proc/<pid>/stat) over the run, minus what the same processes use idle for as long, divided by
 * the successful calls. The last line is one JSON object for machines.
 *
 * Everything shares the machine's cores (sipp, backends, UASes): at a fixed offered rate the calls/s
 * of both modes are the offered rate when nothing fails; the CPU per call is the comparison.
 *
 *   npm run bench -- dataplane [--quick] --lb kamailio,opensips [--reps 3] [--rates 250] [--seconds 8]
 *
 * With `--lb`, the bench compares LBs instead of modes: the same load (transparent UDP path, the
 * product's) through each named LB in front of the same Kamailio backends, repeated `--reps` times
 * with the LBs interleaved and their order rotated per repetition (lbs.ts); per LB the CPU per call
 * measured as above, the calls answered and failed, median and range over the repetitions. The
 * Kamailio LB runs with admission control on and no per-source fair share, the OpenSIPS snippet's
 * feature set (its GCRA limiter, no fair share; neither probes); no limit is set, so both admit every
 * call. The OpenSIPS LB is opensips/lab-lb.cfg (src/lab/opensips-dataplane.ts, 127.47.x.x); Kamailio's
 * binary is SIPWEIGH_KAMAILIO, else `kamailio` on the PATH, for the LB and every backend of both.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAB_SCENARIOS } from '../../../src/lab/scenarios.js';
import { DATAPLANE_NET, startDataPlane, startUases } from '../../../src/lab/dataplane.js';
import { kamailioBinary } from '../../../src/lab/kamailio.js';
import {
  miDelta,
  miStats,
  OSIPS_NET,
  startOsipsPlane,
  startOsipsUases,
} from '../../../src/lab/opensips-dataplane.js';
import { opensipsAvailable, opensipsBinary, OPENSIPS_PREFIX } from '../../../src/lab/opensips.js';
import { probeKamailio } from '../../../src/lab/platforms.js';
import { ProcessGroup } from '../../../src/lab/processes.js';
import { processTreeCpuMs } from '../../../src/lab/process-cpu.js';
import { runSippClient } from '../../../src/lab/sipp.js';
import { stopOnInterrupt } from '../common/cleanup.js';
import { BenchUsageError, benchCommand, numberIn, numberListIn, parseBenchArgs } from '../common/options.js';
import { sleep } from '../../../src/util/sleep.js';
import {
  formatLbRuns,
  formatLbTable,
  lbSchedule,
  lbSummaryJson,
  pairedRatio,
  parseLbList,
  parseOpenSipsVersion,
  summarizeLbRuns,
  type LbName,
  type LbRun,
} from './lbs.js';

export type Mode = 'transparent' | 'stateful';

export interface ModeResult {
  readonly mode: Mode;
  readonly offeredCps: number;
  readonly calls: number;
  readonly successful: number;
  readonly failed: number;
  readonly successfulCps: number;
  /** LB CPU per successful call, idle use subtracted, microseconds. */
  readonly usPerCall: number;
  /** The same without subtracting idle use. */
  readonly rawUsPerCall: number;
  readonly lbProcesses: number;
}

interface BenchOptions {
  readonly rates: readonly number[];
  readonly seconds: number;
  readonly idleSeconds: number;
  /** `--lb`: compare these LBs (transparent path) instead of the Kamailio LB's two modes. */
  readonly lbs?: readonly LbName[];
  /** Repetitions of every LB run (with `--lb`). */
  readonly reps: number;
}

/** The bench's command line; the reduced `--quick` run is one rate for a few seconds. */
export function parseOptions(args: readonly string[]): BenchOptions {
  const o = parseBenchArgs<{ rates?: number[]; seconds?: number; lb?: LbName[]; reps?: number }>(
    benchCommand(
      'dataplane',
      'LB CPU per call: transparent relaying against stateful t_relay, or LB against LB',
    )
      .option(
        '--rates <list>',
        'offered calls/s, comma-separated (default 150,300; --quick 250)',
        numberListIn(1, 5000, true),
      )
      .option('--seconds <s>', 'load per mode and rate (default 20; --quick 8)', numberIn(2, 300))
      .option(
        '--lb <list>',
        'compare LBs instead of modes: kamailio, opensips, comma-separated, or both',
        parseLbList,
      )
      .option(
        '--reps <n>',
        'with --lb: repetitions of every LB run, interleaved (default 5; --quick 3)',
        numberIn(1, 50, true),
      ),
    args,
  );
  // A value that would change nothing is refused by name rather than ignored.
  if (o.reps !== undefined && o.lb === undefined) {
    throw new BenchUsageError('dataplane: --reps applies to an LB comparison: add --lb kamailio,opensips');
  }
  return {
    rates: o.rates ?? (o.quick ? [250] : [150, 300]),
    seconds: o.seconds ?? (o.quick ? 8 : 20),
    idleSeconds: o.quick ? 2 : 3,
    ...(o.lb ? { lbs: o.lb } : {}),
    reps: o.reps ?? (o.quick ? 3 : 5),
  };
}

interface Window {
  readonly calls: number;
  readonly successful: number;
  readonly failed: number;
  readonly successfulCps: number;
  readonly usPerCall: number;
  readonly rawUsPerCall: number;
  readonly lbProcesses: number;
}

/**
 * The measurement, whatever the LB: its idle CPU for `idleSeconds`, then `rate` × `seconds` calls
 * from one sipp client, and the LB's CPU (every process of its tree) over that window.
 */
async function measureWindow(
  group: ProcessGroup,
  lbPid: number,
  rate: number,
  opts: BenchOptions,
  client: { readonly name: string; readonly localIp: string; readonly remote: string },
): Promise<Window> {
  const idle0 = processTreeCpuMs(lbPid);
  await sleep(opts.idleSeconds * 1000);
  const idle1 = processTreeCpuMs(lbPid);
  const idleMsPerS = (idle1.cpuMs - idle0.cpuMs) / opts.idleSeconds;

  const calls = rate * opts.seconds;
  const cpu0 = processTreeCpuMs(lbPid);
  const t0 = Date.now();
  const r = await runSippClient(group, {
    name: client.name,
    scenario: LAB_SCENARIOS.uac,
    localIp: client.localIp,
    localPort: 5090,
    remote: client.remote,
    rate,
    maxCalls: calls,
    timeoutS: opts.seconds + 30,
  });
  const wallS = (Date.now() - t0) / 1000;
  const cpu1 = processTreeCpuMs(lbPid);
  const rawMs = cpu1.cpuMs - cpu0.cpuMs;
  const ok = r.stats.successful;
  const perCall = (ms: number) => (ok > 0 ? (ms * 1000) / ok : Number.NaN);
  return {
    calls,
    successful: ok,
    failed: r.stats.failed,
    successfulCps: ok / wallS,
    usPerCall: perCall(Math.max(0, rawMs - idleMsPerS * wallS)),
    rawUsPerCall: perCall(rawMs),
    lbProcesses: cpu1.processes,
  };
}

/** One mode at one rate, on a fresh topology (so no transaction or table state carries over). */
async function measure(mode: Mode, rate: number, opts: BenchOptions): Promise<ModeResult> {
  const group = new ProcessGroup(mkdtempSync(join(tmpdir(), `sipweigh-bench-dataplane-${mode}-`)));
  const unregister = stopOnInterrupt(() => group.stopAll());
  try {
    const plane = await startDataPlane(group, {
      backends: [{ weight: 50 }, { weight: 50 }],
      lbDefines: mode === 'stateful' ? { SW_STATEFUL: true } : {},
      // t_relay holds ~14 KB per transaction for ~5 s after it ends.
      lbShmMb: 256,
    });
    await startUases(group, plane, {
      scenario: LAB_SCENARIOS.uas,
      tag: mode,
      timeoutS: opts.seconds + opts.idleSeconds + 60,
    });
    const w = await measureWindow(group, plane.lb.process.pid, rate, opts, {
      name: `uac-${mode}-${rate}`,
      localIp: DATAPLANE_NET.clientIp(0),
      remote: `${DATAPLANE_NET.lbIp}:${DATAPLANE_NET.sipPort}`,
    });
    return { mode, offeredCps: rate, ...w };
  } finally {
    await group.stopAll();
    unregister();
  }
}

/**
 * One LB at one rate, on a fresh topology: the transparent UDP path with the same two Kamailio
 * backends (weights 50/50) and UASes, the same shared memory (256 MB) and 4 UDP workers.
 */
async function measureLb(lb: LbName, rate: number, rep: number, opts: BenchOptions): Promise<LbRun> {
  const group = new ProcessGroup(mkdtempSync(join(tmpdir(), `sipweigh-bench-dataplane-${lb}-`)));
  const unregister = stopOnInterrupt(() => group.stopAll());
  const name = `uac-${lb}-${rate}-${rep}`;
  const uasTimeoutS = opts.seconds + opts.idleSeconds + 60;
  try {
    if (lb === 'kamailio') {
      const plane = await startDataPlane(group, {
        backends: [{ weight: 50 }, { weight: 50 }],
        // The OpenSIPS snippet's feature set: admission (no limit set: admits all), no fair share.
        lbDefines: { SW_ADMISSION: true, SW_NO_FAIR_SHARE: true },
        lbShmMb: 256,
      });
      await startUases(group, plane, { scenario: LAB_SCENARIOS.uas, tag: lb, timeoutS: uasTimeoutS });
      const w = await measureWindow(group, plane.lb.process.pid, rate, opts, {
        name,
        localIp: DATAPLANE_NET.clientIp(0),
        remote: `${DATAPLANE_NET.lbIp}:${DATAPLANE_NET.sipPort}`,
      });
      return { lb, rep, offeredCps: rate, ...w };
    }
    const plane = await startOsipsPlane(group, [{ weight: 50 }, { weight: 50 }], { shmMb: 256 });
    try {
      await startOsipsUases(group, plane, { scenario: LAB_SCENARIOS.uas, tag: lb, timeoutS: uasTimeoutS });
      const before = await miStats(plane.mi);
      const w = await measureWindow(group, plane.lb.process.pid, rate, opts, {
        name,
        localIp: OSIPS_NET.clientIp(0),
        remote: `${OSIPS_NET.lbIp}:${OSIPS_NET.sipPort}`,
      });
      // Read after the window: the MI calls' own CPU is not charged to the calls.
      const after = await miStats(plane.mi);
      return {
        lb,
        rep,
        offeredCps: rate,
        ...w,
        sendDynamic: miDelta(before, after, 'sipweigh_send_dynamic'),
      };
    } finally {
      plane.mi.close();
    }
  } finally {
    await group.stopAll();
    unregister();
  }
}

/** What each LB runs, for the report ("kamailio 5.6.3"); the binary's path when it names no version. */
function lbVersions(lbs: readonly LbName[]): Partial<Record<LbName, string>> {
  const out: Partial<Record<LbName, string>> = {};
  for (const lb of lbs) {
    if (lb === 'kamailio') {
      const binary = kamailioBinary();
      out.kamailio = probeKamailio(binary)?.label ?? binary;
    } else {
      const binary = opensipsBinary();
      const r = spawnSync(binary, ['-V'], { encoding: 'utf8', timeout: 10000 });
      out.opensips = parseOpenSipsVersion(`${r.stdout ?? ''}${r.stderr ?? ''}`) ?? binary;
    }
  }
  return out;
}

/** `--lb`: every LB through the same load, repeated and interleaved; figures, then the JSON line. */
async function runLbComparison(opts: BenchOptions, lbs: readonly LbName[]): Promise<void> {
  if (lbs.includes('opensips') && !opensipsAvailable()) {
    throw new Error(`OpenSIPS is not installed at ${OPENSIPS_PREFIX} (run scripts/third-party.sh)`);
  }
  const versions = lbVersions(lbs);
  const plan = lbSchedule(lbs, opts.rates, opts.reps);
  const runs: LbRun[] = [];
  for (const [i, p] of plan.entries()) {
    process.stderr.write(
      `dataplane: [${i + 1}/${plan.length}] rep ${p.rep} ${p.lb} (${versions[p.lb] ?? ''}) at ${p.rate} calls/s for ${opts.seconds} s...\n`,
    );
    const run = await measureLb(p.lb, p.rate, p.rep, opts);
    if (run.sendDynamic !== undefined && run.sendDynamic > 0) {
      process.stderr.write(`dataplane: warning: ${run.sendDynamic} OpenSIPS sends took the per-call form\n`);
    }
    runs.push(run);
  }
  const rows = summarizeLbRuns(runs, lbs, opts.rates);
  const versionLine = lbs.map((lb) => `${lb}: ${versions[lb] ?? '?'}`).join(', ');
  process.stdout.write(
    `LB comparison, transparent UDP path (${versionLine}); ${opts.reps} repetition(s), LBs interleaved, ` +
      `order rotated; median (min–max) over the repetitions\n\n${formatLbTable(rows)}\n\nRuns in order:\n\n${formatLbRuns(runs)}\n`,
  );
  const ref = opts.rates[0];
  const ratio =
    ref !== undefined && lbs.includes('kamailio') && lbs.includes('opensips')
      ? pairedRatio(runs, 'opensips', 'kamailio', ref)
      : null;
  if (ratio) {
    process.stdout.write(
      `\nOpenSIPS ÷ Kamailio CPU per call at ${ref} calls/s, per repetition: median ${ratio.median.toFixed(2)} ` +
        `(${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)}, ${ratio.n} pairs)\n`,
    );
  }
  const summary = lbSummaryJson(runs, {
    lbs,
    rates: opts.rates,
    reps: opts.reps,
    seconds: opts.seconds,
    versions,
  });
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

export function formatTable(rows: readonly ModeResult[]): string {
  const head =
    '| mode | offered calls/s | calls | failed | successful calls/s | LB CPU µs/call | (raw, idle included) |';
  const sep = '|---|---|---|---|---|---|---|';
  const lines = rows.map(
    (r) =>
      `| ${r.mode} | ${r.offeredCps} | ${r.successful}/${r.calls} | ${r.failed} | ${fmt(r.successfulCps)} | ${fmt(r.usPerCall)} | ${fmt(r.rawUsPerCall)} |`,
  );
  return [head, sep, ...lines].join('\n');
}

export async function runDataplaneBench(args: string[]): Promise<void> {
  const opts = parseOptions(args);
  if (opts.lbs) {
    await runLbComparison(opts, opts.lbs);
    return;
  }
  const rows: ModeResult[] = [];
  for (const rate of opts.rates) {
    for (const mode of ['transparent', 'stateful'] as const) {
      process.stderr.write(`dataplane: ${mode} at ${rate} calls/s for ${opts.seconds} s...\n`);
      rows.push(await measure(mode, rate, opts));
    }
  }
  process.stdout.write(`${formatTable(rows)}\n`);
  // The headline numbers are those at the first (reference) rate.
  const ref = opts.rates[0];
  const t = rows.find((r) => r.mode === 'transparent' && r.offeredCps === ref);
  const s = rows.find((r) => r.mode === 'stateful' && r.offeredCps === ref);
  const round = (n: number | undefined) =>
    n === undefined || !Number.isFinite(n) ? null : Math.round(n * 10) / 10;
  const summary = {
    bench: 'dataplane',
    rate_cps: ref,
    transparent_us_per_call: round(t?.usPerCall),
    stateful_us_per_call: round(s?.usPerCall),
    ratio: t && s && t.usPerCall > 0 ? round(s.usPerCall / t.usPerCall) : null,
    transparent_calls_per_s: round(t?.successfulCps),
    stateful_calls_per_s: round(s?.successfulCps),
    rows: rows.map((r) => ({
      mode: r.mode,
      offered_cps: r.offeredCps,
      successful: r.successful,
      failed: r.failed,
      successful_cps: round(r.successfulCps),
      us_per_call: round(r.usPerCall),
    })),
  };
  process.stdout.write(`${JSON.stringify(summary)}\n`);
}
