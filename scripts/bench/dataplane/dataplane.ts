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
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LAB_SCENARIOS } from '../../../src/lab/scenarios.js';
import { DATAPLANE_NET, startDataPlane, startUases } from '../../../src/lab/dataplane.js';
import { ProcessGroup } from '../../../src/lab/processes.js';
import { processTreeCpuMs } from '../../../src/lab/process-cpu.js';
import { runSippClient } from '../../../src/lab/sipp.js';
import { stopOnInterrupt } from '../common/cleanup.js';
import { benchCommand, numberIn, numberListIn, parseBenchArgs } from '../common/options.js';
import { sleep } from '../../../src/util/sleep.js';

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
}

/** The bench's command line; the reduced `--quick` run is one rate for a few seconds. */
export function parseOptions(args: readonly string[]): BenchOptions {
  const o = parseBenchArgs<{ rates?: number[]; seconds?: number }>(
    benchCommand('dataplane', 'LB CPU per call: transparent relaying against stateful t_relay')
      .option(
        '--rates <list>',
        'offered calls/s, comma-separated (default 150,300; --quick 250)',
        numberListIn(1, 5000, true),
      )
      .option('--seconds <s>', 'load per mode and rate (default 20; --quick 8)', numberIn(2, 300)),
    args,
  );
  return {
    rates: o.rates ?? (o.quick ? [250] : [150, 300]),
    seconds: o.seconds ?? (o.quick ? 8 : 20),
    idleSeconds: o.quick ? 2 : 3,
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
    const lbPid = plane.lb.process.pid;

    const idle0 = processTreeCpuMs(lbPid);
    await sleep(opts.idleSeconds * 1000);
    const idle1 = processTreeCpuMs(lbPid);
    const idleMsPerS = (idle1.cpuMs - idle0.cpuMs) / opts.idleSeconds;

    const calls = rate * opts.seconds;
    const cpu0 = processTreeCpuMs(lbPid);
    const t0 = Date.now();
    const r = await runSippClient(group, {
      name: `uac-${mode}-${rate}`,
      scenario: LAB_SCENARIOS.uac,
      localIp: DATAPLANE_NET.clientIp(0),
      localPort: 5090,
      remote: `${DATAPLANE_NET.lbIp}:${DATAPLANE_NET.sipPort}`,
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
      mode,
      offeredCps: rate,
      calls,
      successful: ok,
      failed: r.stats.failed,
      successfulCps: ok / wallS,
      usPerCall: perCall(Math.max(0, rawMs - idleMsPerS * wallS)),
      rawUsPerCall: perCall(rawMs),
      lbProcesses: cpu1.processes,
    };
  } finally {
    await group.stopAll();
    unregister();
  }
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
