/**
 * An agent beside a real Kamailio backend (src/lab/kamailio/backend.cfg, 2 workers and a 20 ms service delay
 * per INVITE: capacity ≈ 2 / 20 ms ≈ 100 calls/s) under sipp load, probed by the real controller
 * endpoint. The in-flight work it reports (transactions, dialogs, request rate) must rise with the
 * load and fall after it. A short burst above capacity must show in the signals that see work waiting
 * before Kamailio picks it up (the SIP socket's receive queue, the OPTIONS round trip), which then
 * fall again. Bounded load (-m), generous deadlines; the test asserts rise and fall, never timings.
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { runAgent, type AgentHandle } from '../../src/agent/index.js';
import type { AgentConfig } from '../../src/config/types.js';
import { ProbeEndpoint } from '../../src/probe/probe-endpoint.js';
import { deriveBackendKey } from '../../src/heartbeat/keys.js';
import type { ReportMetrics } from '../../src/heartbeat/messages.js';
import { startKamailio } from '../../src/lab/kamailio.js';
import { startSipp, type SippRun } from '../../src/lab/sipp.js';
import { eventually, REPO_ROOT, sleep, useProcessGroup } from '../support/harness.js';

const MASTER = Buffer.alloc(32, 0x66);
const BACKEND = 'be-load';
const BE_IP = '127.0.4.40';
const UAS_IP = '127.0.4.41';
const UAC_IP = '127.0.4.42';
const RPC_PORT = 5072;

interface Sample {
  readonly at: number;
  readonly m: ReportMetrics;
}

const peak = (samples: readonly Sample[], f: (m: ReportMetrics) => number | null): number =>
  Math.max(0, ...samples.map((s) => f(s.m) ?? 0));

describe('integration: agent beside a loaded Kamailio backend', function () {
  this.timeout(240_000);
  const handle = useProcessGroup('agent-load');
  let ep: ProbeEndpoint;
  let agent: AgentHandle;
  const samples: Sample[] = [];
  const since = (t: number) => samples.filter((s) => s.at >= t);

  before(async function () {
    await startKamailio(handle.group, {
      name: 'backend',
      cfg: join(REPO_ROOT, 'src', 'lab', 'kamailio', 'backend.cfg'),
      defines: {
        SW_BE_IP: BE_IP,
        SW_BE_PORT: 5060,
        SW_UAS_IP: UAS_IP,
        SW_UAS_PORT: 5060,
        SW_BE_RPC_PORT: RPC_PORT,
        SW_WORKERS: 2,
        SW_SERVICE_DELAY_US: 20000,
        SW_LB_TRUSTED: '"127.0.4.49/32"',
      },
      shmMb: 256,
      waitFor: [
        { transport: 'udp', address: BE_IP, port: 5060 },
        { transport: 'tcp', address: BE_IP, port: RPC_PORT },
      ],
    });
    await startSipp(handle.group, {
      name: 'uas',
      scenario: join(REPO_ROOT, 'scripts', 'sipp', 'uas.xml'),
      localIp: UAS_IP,
      localPort: 5060,
      timeoutS: 200,
    });
    ep = await ProbeEndpoint.start(
      {
        listen: { address: '127.0.4.43', port: 0 },
        masterKeys: [MASTER],
        timing: { probeIntervalMs: 100, probeTimeoutMs: 90 },
      },
      { onReport: (_b, m) => samples.push({ at: performance.now(), m }) },
    );
    const config: AgentConfig = {
      kind: 'agent',
      backend_id: BACKEND,
      set: 1,
      listen: { address: '127.0.4.44', port: 0 },
      controller: ep.address,
      key: deriveBackendKey(MASTER, BACKEND),
      capacity: 100,
      draining: false,
      sip: { address: BE_IP, port: 5060 },
      kamailio_rpc: { url: `http://${BE_IP}:${RPC_PORT}/RPC`, timeout_ms: 1000 },
      collect_interval_ms: 100,
      logging: { level: 'info' },
    };
    agent = await runAgent(config, undefined, { signals: false });
    ep.core.upsert({
      id: BACKEND,
      set: 1,
      uri: `sip:${BE_IP}:5060`,
      capacity: 100,
      agent: agent.address,
      source: 'config',
    });
    ep.arm();
  });

  after(async function () {
    await agent?.stop('test over', false);
    await ep?.close();
  });

  const uac = (name: string, rate: number, calls: number, holdMs: number, timeoutS = 90): Promise<SippRun> =>
    startSipp(handle.group, {
      name,
      scenario: join(REPO_ROOT, 'scripts', 'sipp', 'uac.xml'),
      localIp: UAC_IP,
      localPort: 5060,
      remote: `${BE_IP}:5060`,
      rate,
      maxCalls: calls,
      timeoutS,
      extraArgs: ['-d', String(holdMs)],
    });

  it('reports transactions, dialogs and request rate that rise under calls and fall after', async function () {
    // Idle baseline: every Kamailio figure present (the collectors work) and near zero.
    await eventually(() => {
      const m = samples[samples.length - 1]?.m;
      return (
        m &&
        m.tm_current !== null &&
        m.dialogs_active !== null &&
        m.req_rate !== null &&
        m.options_rtt_ms !== null &&
        m.udp_rx_queue_bytes !== null
      );
    }, 'a full report');
    const t0 = performance.now();
    await sleep(2000);
    const idle = since(t0);
    const idleTm = peak(idle, (m) => m.tm_current);
    const idleDialogs = peak(idle, (m) => m.dialogs_active);

    // 60 calls/s (60 % of capacity) for 10 s, each call held 2 s: ~120 dialogs at once.
    const tLoad = performance.now();
    const run = await uac('uac-steady', 60, 600, 2000);
    const result = await run.done();
    const loaded = samples.filter((s) => s.at >= tLoad && s.at <= performance.now());
    const peakTm = peak(loaded, (m) => m.tm_current);
    const peakDialogs = peak(loaded, (m) => m.dialogs_active);
    const peakRate = peak(loaded, (m) => m.req_rate);
    console.log(
      `      idle: tm ${idleTm}, dialogs ${idleDialogs}; load (${result.stats.successful}/${result.stats.created} calls ok): ` +
        `peak tm ${peakTm}, dialogs ${peakDialogs}, req/s ${peakRate.toFixed(0)}, rx_queue ${peak(loaded, (m) => m.udp_rx_queue_bytes)} B, ` +
        `options rtt ${peak(loaded, (m) => m.options_rtt_ms).toFixed(2)} ms`,
    );
    expect(result.stats.successful, 'the load itself succeeded (below capacity)').to.be.at.least(480);
    expect(peakTm).to.be.at.least(idleTm + 50);
    expect(peakDialogs).to.be.at.least(idleDialogs + 50);
    expect(peakRate).to.be.greaterThan(100);

    // After: dialogs end with their BYEs, transactions leave memory after tm's wait timer.
    await eventually(
      () => {
        const m = samples[samples.length - 1]!.m;
        return m.dialogs_active !== null &&
          m.dialogs_active <= idleDialogs &&
          m.tm_current !== null &&
          m.tm_current <= idleTm + 5
          ? m
          : undefined;
      },
      'in-flight work back to idle',
      60_000,
    );
    const tail = samples.slice(-5);
    expect(peak(tail, (m) => m.req_rate)).to.be.lessThan(peakRate / 4);
  });

  it('a burst above capacity shows in the receive queue and OPTIONS round trip, which fall after', async function () {
    const t0 = performance.now();
    await sleep(1500);
    const calm = since(t0);
    const calmQueue = peak(calm, (m) => m.udp_rx_queue_bytes);
    const calmRtt = peak(calm, (m) => m.options_rtt_ms);

    // 250 calls/s (2.5 × capacity) for 1 s: the two workers fall behind and datagrams queue. The
    // client is stopped soon after, so its retransmissions do not keep the backend overloaded.
    const tBurst = performance.now();
    const run = await uac('uac-burst', 250, 250, 0, 30);
    await eventually(
      () => peak(since(tBurst), (m) => m.udp_rx_queue_bytes) > calmQueue + 5000,
      'the receive queue rising',
      30_000,
    );
    await sleep(2000);
    await run.process.stop();
    const burst = since(tBurst);
    const peakQueue = peak(burst, (m) => m.udp_rx_queue_bytes);
    const peakRtt = peak(burst, (m) => m.options_rtt_ms);
    console.log(
      `      calm: rx_queue ${calmQueue} B, options rtt ${calmRtt.toFixed(2)} ms; burst: rx_queue ${peakQueue} B, ` +
        `options rtt ${peakRtt.toFixed(1)} ms, tm ${peak(burst, (m) => m.tm_current)}, drops ${peak(burst, (m) => m.udp_drops)}`,
    );
    expect(peakQueue).to.be.greaterThan(calmQueue + 5000);
    // About a second of work queues up in front of the workers: pings wait for it (or time out at 1 s).
    expect(peakRtt).to.be.at.least(500);
    expect(peakRtt).to.be.greaterThan(calmRtt * 5);

    await eventually(
      () => {
        const recent = samples.slice(-10);
        return (
          recent.length === 10 &&
          peak(recent, (m) => m.udp_rx_queue_bytes) <= calmQueue + 1000 &&
          peak(recent, (m) => m.options_rtt_ms) < peakRtt / 5
        );
      },
      'queue and round trip back down',
      60_000,
    );
    expect(agent.counters().dropsTotal).to.equal(0);
  });
});
