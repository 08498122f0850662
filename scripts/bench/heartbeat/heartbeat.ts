/**
 * Heartbeat control-plane benchmark: one controller endpoint (this process) probes N simulated
 * backends at R probes/s each; the simulated agents run in a child process (its own core) and
 * answer every probe with a signed report. Measured in this process only: reports accepted per
 * second, CPU per 1,000 reports (user+system of the controller process, which also sends the
 * probes), and resident memory per backend.
 *
 *   npm run bench -- heartbeat [--quick] [--backends 1000,5000] [--rate 10] [--seconds 20]
 *
 * The simulated agents skip verifying the probes' MAC (they would otherwise need as much CPU as
 * the controller and become the bottleneck on a 2-core machine); agent-side verification is
 * covered by the agent's own tests. Everything runs on 127.0.3.x.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { ProbeEndpoint } from '../../../src/probe/probe-endpoint.js';
import { encodeMessage } from '../../../src/heartbeat/codec.js';
import { deriveBackendKey, heartbeatKey, type HeartbeatKey } from '../../../src/heartbeat/keys.js';
import { ProbeCore } from '../../../src/probe/probe-core.js';
import { stopOnInterrupt } from '../common/cleanup.js';
import { benchCommand, numberIn, numberListIn, parseBenchArgs } from '../common/options.js';
import { backendId, SIM_IPS, SIM_METRICS, type SimConfig, type SimToParent } from './simulator.js';
import { availableParallelism, loadavg } from 'node:os';
import { sleep } from '../../../src/util/sleep.js';

const CONTROLLER_IP = '127.0.3.30';
const MASTER = Buffer.alloc(32, 0x5e);

// ---------------------------------------------------------------------------------------------
// Controller side (this process)

interface RunResult {
  backends: number;
  ratePerBackend: number;
  seconds: number;
  probesPerS: number;
  reportsPerS: number;
  cpuMsPer1k: number;
  cpuUtil: number;
  reportsPerCpuS: number;
  rssKbPerBackend: number;
  heapKbPerBackend: number;
  up: number;
  misses: number;
  dropped: number;
  simCpuUtil: number;
  /** Overload cap on probes/s at the end (Infinity: none). */
  probeCap: number;
}

function gcFn(): () => void {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as (() => void) | undefined;
  return () => {
    gc?.();
    gc?.();
  };
}

function startSimulator(): ChildProcess {
  const child = fork(fileURLToPath(new URL('./simulator.js', import.meta.url)), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const unregister = stopOnInterrupt(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  child.once('exit', unregister);
  return child;
}

function nextMessage(
  child: ChildProcess,
  kind: SimToParent['kind'],
  timeoutMs: number,
): Promise<SimToParent> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`simulator: no ${kind} within ${timeoutMs} ms`)), timeoutMs);
    const on = (m: unknown) => {
      if ((m as SimToParent).kind !== kind) return;
      clearTimeout(t);
      child.off('message', on);
      resolve(m as SimToParent);
    };
    child.on('message', on);
  });
}

async function runOne(n: number, rate: number, warmupS: number, seconds: number): Promise<RunResult> {
  const gc = gcFn();
  const interval = 1000 / rate;
  const ep = await ProbeEndpoint.start({
    listen: { address: CONTROLLER_IP, port: 0 },
    masterKeys: [MASTER],
    // No probe budget: the bench offers the full rate to see what one core does with it. A generous
    // timeout (5 intervals): this measures throughput and cost, not detection, and on a shared
    // machine scheduling delays alone can exceed a tight one.
    timing: { probeIntervalMs: interval, probeTimeoutMs: 5 * interval, maxProbesPerSecond: Infinity },
  });
  const child = startSimulator();
  try {
    const ready = nextMessage(child, 'ready', 60_000);
    child.send({ n, masterHex: MASTER.toString('hex'), controller: ep.address } satisfies SimConfig);
    const { ports } = (await ready) as Extract<SimToParent, { kind: 'ready' }>;

    gc();
    const mem0 = process.memoryUsage();
    for (let i = 0; i < n; i++) {
      const s = i % SIM_IPS.length;
      ep.core.upsert({
        id: backendId(i),
        set: 1,
        uri: `sip:10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:5060`,
        capacity: 200,
        agent: { address: SIM_IPS[s]!, port: ports[s]! },
        source: 'config',
      });
    }
    ep.arm();
    await sleep(warmupS * 1000);
    gc();
    const mem1 = process.memoryUsage();

    const c0 = structuredClone(ep.core.counters);
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const cpu = process.cpuUsage(cpu0);
    const dt = (performance.now() - t0) / 1000;
    const c1 = ep.core.counters;
    const reports = c1.accepted.report - c0.accepted.report;
    const probes = c1.probesSent - c0.probesSent;
    const cpuMs = (cpu.user + cpu.system) / 1000;
    const up = ep.core.list().filter((b) => b.health.kind === 'up').length;
    const dropped = Object.values(c1.dropped).reduce((a, b) => a + b, 0);

    const statsP = nextMessage(child, 'stats', 10_000);
    child.send({ kind: 'stop' });
    const sim = (await statsP) as Extract<SimToParent, { kind: 'stats' }>;
    const simWall = warmupS + seconds;
    return {
      backends: n,
      ratePerBackend: rate,
      seconds: dt,
      probesPerS: probes / dt,
      reportsPerS: reports / dt,
      cpuMsPer1k: reports > 0 ? cpuMs / (reports / 1000) : NaN,
      cpuUtil: cpuMs / 1000 / dt,
      reportsPerCpuS: reports / (cpuMs / 1000),
      rssKbPerBackend: (mem1.rss - mem0.rss) / 1024 / n,
      heapKbPerBackend: (mem1.heapUsed - mem0.heapUsed) / 1024 / n,
      up,
      misses: c1.misses - c0.misses,
      dropped,
      simCpuUtil: sim.cpuMs / 1000 / simWall,
      probeCap: ep.core.probeCapPerSecond,
    };
  } finally {
    if (child.exitCode === null && child.pid !== undefined) {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(2000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await ep.close();
  }
}

/**
 * The controller's own work without sockets, in this process: what each report costs from bytes to
 * state (header, MAC, JSON, schema, replay window, registry), and what each probe costs (schedule,
 * encode, sign). The difference to the UDP figures is Node's and the kernel's socket work.
 */
function inProcessCosts(n: number): { usPerReport: number; usPerProbe: number } {
  const cpuUs = (f: () => void) => {
    const c0 = process.cpuUsage();
    f();
    const c = process.cpuUsage(c0);
    return c.user + c.system;
  };
  // Receive path.
  const now = Date.now();
  // The wall clock stands still so that encoding the batches up front does not age them.
  const core = new ProbeCore(
    { masterKeys: [MASTER], clock: { mono: () => performance.now(), wall: () => now } },
    () => undefined,
  );
  const keys: HeartbeatKey[] = [];
  for (let i = 0; i < n; i++) {
    core.upsert({ id: backendId(i), set: 1, uri: 'sip:10.0.0.1', capacity: 1, source: 'config' });
    keys.push(heartbeatKey(deriveBackendKey(MASTER, backendId(i))));
  }
  const count = Math.max(100_000, n * 20);
  const batch = (boot: string) =>
    Array.from({ length: count }, (_, j) =>
      encodeMessage(
        {
          type: 'report',
          backendId: backendId(j % n),
          seq: Math.floor(j / n),
          ts: now,
          boot,
          echoSeq: 0,
          echoTs: now,
          metrics: SIM_METRICS,
        },
        keys[j % n]!,
        { validate: false },
      ),
    );
  const from = { address: SIM_IPS[0]!, port: 9 };
  const warm = batch('benchwarm1');
  for (const b of warm) core.receive(b, from);
  const measured = batch('benchmeas1');
  const rxUs = cpuUs(() => {
    for (const b of measured) core.receive(b, from);
  });
  if (core.counters.accepted.report !== 2 * count)
    throw new Error(`in-process receive: ${core.counters.accepted.report} of ${2 * count} accepted`);
  // Probe path: n backends, 100 ms interval, 10 s of a manual clock, sends discarded.
  let mono = 0;
  let sent = 0;
  const prober = new ProbeCore(
    {
      masterKeys: [MASTER],
      clock: { mono: () => mono, wall: () => now + mono },
      timing: { probeIntervalMs: 100, probeTimeoutMs: 80 },
    },
    () => void sent++,
  );
  for (let i = 0; i < n; i++)
    prober.upsert({
      id: backendId(i),
      set: 1,
      uri: 'sip:10.0.0.1',
      capacity: 1,
      agent: { address: '127.0.3.31', port: 9 },
      source: 'config',
    });
  const txUs = cpuUs(() => {
    for (mono = 0; mono < 10_000; mono += 1) prober.tick(mono);
  });
  return { usPerReport: rxUs / count, usPerProbe: txUs / sent };
}

interface RxOnlyResult {
  rate: number;
  reportsPerS: number;
  cpuMsPer1k: number;
  cpuUtil: number;
  sentPerS: number;
}

/**
 * The controller's receive path alone over UDP: the simulator sends signed reports at `rate` and no
 * probes go out. Reports echo no probe (counted as unmatched), so this is header, MAC, JSON, schema,
 * replay window and bookkeeping, plus Node's and the kernel's receive work: the figure to compare
 * with "50,000 reports/s on one core".
 */
async function runReceiveOnly(n: number, rate: number, seconds: number): Promise<RxOnlyResult> {
  const ep = await ProbeEndpoint.start({
    listen: { address: CONTROLLER_IP, port: 0 },
    masterKeys: [MASTER],
  });
  const child = startSimulator();
  try {
    const ready = nextMessage(child, 'ready', 60_000);
    child.send({ n, masterHex: MASTER.toString('hex'), controller: ep.address } satisfies SimConfig);
    await ready;
    for (let i = 0; i < n; i++)
      ep.core.upsert({ id: backendId(i), set: 1, uri: 'sip:10.0.0.1:5060', capacity: 200, source: 'config' });
    child.send({ kind: 'blast', rate });
    await sleep(1500);
    const peek = async () => {
      const p = nextMessage(child, 'stats', 10_000);
      child.send({ kind: 'peek' });
      return (await p) as Extract<SimToParent, { kind: 'stats' }>;
    };
    const sim0 = await peek();
    const c0 = ep.core.counters.accepted.report;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await sleep(seconds * 1000);
    const cpu = process.cpuUsage(cpu0);
    const dt = (performance.now() - t0) / 1000;
    const reports = ep.core.counters.accepted.report - c0;
    const sim1 = await peek();
    child.send({ kind: 'stop' });
    const cpuMs = (cpu.user + cpu.system) / 1000;
    return {
      rate,
      reportsPerS: reports / dt,
      cpuMsPer1k: cpuMs / (reports / 1000),
      cpuUtil: cpuMs / 1000 / dt,
      sentPerS: (sim1.reports - sim0.reports) / dt,
    };
  } finally {
    if (child.exitCode === null && child.pid !== undefined) {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(2000)]);
      if (child.exitCode === null) child.kill('SIGKILL');
    }
    await ep.close();
  }
}

export async function runHeartbeatBench(args: string[]): Promise<void> {
  const o = parseBenchArgs<{ backends: number[]; rate: number; seconds?: number; rxRate: number }>(
    benchCommand(
      'heartbeat',
      'controller heartbeat endpoint: reports/s, CPU per 1k reports, memory per backend',
    )
      .option(
        '--backends <list>',
        'simulated backends per run, comma-separated',
        numberListIn(1, 1_000_000, true),
        [1000, 5000],
      )
      .option('--rate <n>', 'probes per backend per second', numberIn(0.01, 1000), 10)
      .option('--seconds <s>', 'measured seconds per run (default 30; --quick 8)', numberIn(1, 3600))
      .option('--rx-rate <n>', 'receive-only run: reports/s offered', numberIn(1, 10_000_000, true), 50_000),
    args,
  );
  const quick = o.quick;
  const sizes = o.backends;
  const rate = o.rate;
  const seconds = o.seconds ?? (quick ? 8 : 30);
  const warmup = quick ? 3 : 5;

  // Largest first: its memory figure is the one reported, and it is cleanest in a fresh heap.
  const results: RunResult[] = [];
  for (const n of [...sizes].sort((a, b) => b - a)) {
    process.stderr.write(
      `heartbeat bench: ${n} backends × ${rate} probes/s, ${warmup} s warm-up + ${seconds} s measured…\n`,
    );
    results.push(await runOne(n, rate, warmup, seconds));
  }
  results.sort((a, b) => a.backends - b.backends);
  const rxRate = o.rxRate;
  process.stderr.write(
    `heartbeat bench: receive path only, ${rxRate} reports/s from ${Math.max(...sizes)} backends…\n`,
  );
  const rx = await runReceiveOnly(Math.max(...sizes), rxRate, quick ? 5 : 15);
  const costs = inProcessCosts(Math.max(...sizes));

  const row = (cells: (string | number)[]) =>
    cells.map((c, i) => String(c).padStart(i === 0 ? 8 : 12)).join(' ');
  console.log(
    row([
      'backends',
      'offered/s',
      'probe cap/s',
      'probes/s',
      'reports/s',
      'cpu ms/1k',
      'ctl cpu %',
      'reports/cpu-s',
      'rss KB/be',
      'heap KB/be',
      'up',
      'misses/s',
      'sim cpu %',
    ]),
  );
  for (const r of results) {
    console.log(
      row([
        r.backends,
        (r.backends * r.ratePerBackend).toFixed(0),
        Number.isFinite(r.probeCap) ? r.probeCap.toFixed(0) : 'none',
        r.probesPerS.toFixed(0),
        r.reportsPerS.toFixed(0),
        r.cpuMsPer1k.toFixed(1),
        (r.cpuUtil * 100).toFixed(0),
        r.reportsPerCpuS.toFixed(0),
        // A later, smaller run reuses pages the larger one freed: its RSS delta says nothing.
        r.rssKbPerBackend > 0 ? r.rssKbPerBackend.toFixed(2) : 'n/a',
        r.heapKbPerBackend.toFixed(2),
        `${r.up}/${r.backends}`,
        (r.misses / r.seconds).toFixed(1),
        (r.simCpuUtil * 100).toFixed(0),
      ]),
    );
  }
  console.log(
    `receive path only (UDP): offered ${rx.rate}/s, simulator sent ${rx.sentPerS.toFixed(0)}/s, accepted ${rx.reportsPerS.toFixed(0)}/s, ` +
      `${rx.cpuMsPer1k.toFixed(1)} ms CPU per 1k reports, controller CPU ${(rx.cpuUtil * 100).toFixed(0)} % ` +
      `-> ${Math.round(1e6 / rx.cpuMsPer1k)} reports per CPU-second`,
  );
  const perPair = costs.usPerReport + costs.usPerProbe;
  console.log(
    `in-process (no sockets): ${costs.usPerReport.toFixed(1)} µs CPU per report (${Math.round(1e6 / costs.usPerReport)}/s per core), ` +
      `${costs.usPerProbe.toFixed(1)} µs per probe; probe+report ${perPair.toFixed(1)} µs -> ${Math.round(1e6 / perPair)} exchanges/s per core before socket I/O`,
  );
  const load = loadavg();
  console.log(
    `machine: ${load.map((l) => l.toFixed(2)).join(' ')} load average (1/5/15 min) on ${availableParallelism()} cores; other work on the machine inflates the CPU figures`,
  );
  const last = results[results.length - 1]!;
  console.log(
    JSON.stringify({
      bench: 'heartbeat',
      backends: last.backends,
      probes_per_backend_per_s: last.ratePerBackend,
      probes_per_s: Math.round(last.probesPerS),
      probe_cap_per_s: Number.isFinite(last.probeCap) ? Math.round(last.probeCap) : null,
      reports_per_s: Math.round(last.reportsPerS),
      cpu_ms_per_1k: Number(last.cpuMsPer1k.toFixed(2)),
      rss_kb_per_backend: Number(last.rssKbPerBackend.toFixed(2)),
      heap_kb_per_backend: Number(last.heapKbPerBackend.toFixed(2)),
      controller_cpu_util: Number(last.cpuUtil.toFixed(2)),
      reports_per_cpu_s: Math.round(last.reportsPerCpuS),
      rx_only_reports_per_s: Math.round(rx.reportsPerS),
      rx_only_cpu_ms_per_1k: Number(rx.cpuMsPer1k.toFixed(2)),
      in_process_us_per_report: Number(costs.usPerReport.toFixed(2)),
      in_process_us_per_probe: Number(costs.usPerProbe.toFixed(2)),
      loadavg_1m: Number(load[0]!.toFixed(2)),
      up: last.up,
      misses_per_s: Number((last.misses / last.seconds).toFixed(1)),
      quick,
    }),
  );
}
