/**
 * `npm run demo`: the local lab at work. Three backends of unequal emulated capacity behind the
 * transparent LB, each with a sipweigh agent; the controller's heartbeat endpoint probes them while a
 * sipp load runs through the LB, and prints what it sees every second. Then: what each backend got,
 * and what the LB saw (one message per call). Everything runs on loopback and is stopped by PID at
 * the end (also on Ctrl-C or failure).
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { loadControllerConfig } from '../src/config/load.js';
import { endpointOptionsFromConfig } from '../src/heartbeat/config.js';
import { ControllerEndpoint } from '../src/heartbeat/controller-endpoint.js';
import { applyDiscovery } from '../src/discovery/apply.js';
import { mergeDiscovery } from '../src/discovery/merge.js';
import { KamailioRpcClient } from '../src/kamailio/rpc.js';
import { initialDestinations, startLab, type RunningLab } from '../src/lab/lab.js';
import { LAB_SCENARIOS } from '../src/lab/scenarios.js';
import { runSippClient } from '../src/lab/sipp.js';

const CAPACITIES = [50, 100, 200];
const RATE = 90; // calls/s offered: about a quarter of the pool's 350
const CALLS = 450;
const HOLD_MS = 2000;

type Counters = Record<string, number>;

async function coreStats(url: string, auth?: { username: string; password: string }): Promise<Counters> {
  const rpc = new KamailioRpcClient({ url, ...(auth ?? {}), deadlineMs: 2000 });
  try {
    return (await rpc.call('stats.fetchn', ['core:'])) as Counters;
  } finally {
    rpc.close();
  }
}

const pick = (c: Counters, name: string) => c[`core.${name}`] ?? 0;
const fmt = (v: number | null | undefined, digits = 0) =>
  v === null || v === undefined ? '-' : v.toFixed(digits);

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) =>
      r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('   '),
    )
    .join('\n');
}

async function main(): Promise<number> {
  const say = (s: string) => process.stdout.write(`${s}\n`);
  say(
    `sipweigh demo: LB 127.0.0.10, backends of ${CAPACITIES.join('/')} calls/s (emulated), ` +
      `${CALLS} calls at ${RATE}/s held ${HOLD_MS / 1000} s`,
  );
  let lab: RunningLab | undefined;
  let heartbeat: ControllerEndpoint | undefined;
  let ticker: NodeJS.Timeout | undefined;
  const stop = async () => {
    if (ticker) clearInterval(ticker);
    await heartbeat?.close();
    heartbeat = undefined;
    await lab?.stop();
    lab = undefined;
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    lab = await startLab({
      backends: CAPACITIES.length,
      capacities: CAPACITIES,
      dir: join(tmpdir(), 'sipweigh-demo'),
    });
    const { plan } = lab.state;

    // The controller's heartbeat side, from the config the lab generated: it probes every agent.
    const config = loadControllerConfig(lab.state.configs.controller);
    heartbeat = await ControllerEndpoint.start(endpointOptionsFromConfig(config));
    // Backends from the config (the controller adds each LB's dispatcher.list and signed hellos).
    applyDiscovery(heartbeat.core, mergeDiscovery(config.sets, [], { defaultCapacity: 100 }).backends);
    heartbeat.arm();
    const hb = heartbeat;
    const peak = new Map<string, { dialogs: number; tm: number; rtt: number }>();
    const track = () => {
      for (const b of hb.core.list()) {
        const m = b.metrics;
        const p = peak.get(b.id) ?? { dialogs: 0, tm: 0, rtt: 0 };
        peak.set(b.id, {
          dialogs: Math.max(p.dialogs, m?.dialogs_active ?? 0),
          tm: Math.max(p.tm, m?.tm_current ?? 0),
          rtt: Math.max(p.rtt, m?.options_rtt_ms ?? 0),
        });
      }
    };
    const live = () =>
      hb.core
        .list()
        .map(
          (b) =>
            `${b.id} ${b.health.kind.padEnd(4)} dlg ${fmt(b.metrics?.dialogs_active).padStart(3)} tm ${fmt(b.metrics?.tm_current).padStart(4)} q ${fmt(b.metrics?.udp_rx_queue_bytes).padStart(5)}B rtt ${fmt(b.metrics?.options_rtt_ms, 1).padStart(5)}ms`,
        )
        .join(' | ');
    say('lab up: LB, 3 backends with a sipp UAS and a sipweigh agent each; heartbeat probing every 200 ms');
    // A backend is trusted after a few answers in a row (never seen -> returning -> up): wait for it.
    for (let i = 0; i < 100 && !hb.core.list().every((b) => b.health.kind === 'up'); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    say(
      'what the heartbeat sees (dialogs, transactions, SIP socket queue, OPTIONS round trip), each second:',
    );
    let seconds = 0;
    ticker = setInterval(() => {
      track();
      seconds++;
      say(`  t+${String(seconds).padStart(2)}s  ${live()}`);
    }, 1000);

    const uac = await runSippClient(lab.group, {
      name: 'uac',
      scenario: LAB_SCENARIOS.uac,
      localIp: plan.client.address,
      localPort: 5060,
      remote: `${plan.lb.sip.address}:${plan.lb.sip.port}`,
      rate: RATE,
      maxCalls: CALLS,
      timeoutS: 60,
      extraArgs: ['-d', String(HOLD_MS)],
    });
    clearInterval(ticker);
    ticker = undefined;

    const weights = initialDestinations(plan).map((d) => d.rweight);
    const perBackend = await Promise.all(
      plan.backends.map((b) => coreStats(`http://${b.sip.address}:${b.rpcPort}/RPC`)),
    );
    const lbStats = await coreStats(lab.state.lb_rpc_url, {
      username: plan.lb.rpc.username,
      password: plan.lb.rpc.password,
    });
    const invites = perBackend.map((c) => pick(c, 'rcv_requests_invite'));
    const total = invites.reduce((a, b) => a + b, 0) || 1;
    say('');
    say(
      table([
        [
          'backend',
          'capacity/s',
          'rweight',
          'INVITEs',
          'share',
          'ACKs',
          'BYEs',
          'peak dialogs',
          'peak OPTIONS rtt',
        ],
        ...plan.backends.map((b, i) => [
          `${b.id} ${b.sip.address}`,
          String(b.emulation?.callsPerSecond ?? '-'),
          String(weights[i]),
          String(invites[i]),
          `${((100 * (invites[i] ?? 0)) / total).toFixed(1)} %`,
          String(pick(perBackend[i]!, 'rcv_requests_ack')),
          String(pick(perBackend[i]!, 'rcv_requests_bye')),
          String(peak.get(b.id)?.dialogs ?? '-'),
          `${fmt(peak.get(b.id)?.rtt, 1)} ms`,
        ]),
        [
          'LB 127.0.0.10',
          '',
          '',
          String(pick(lbStats, 'rcv_requests_invite')),
          '',
          String(pick(lbStats, 'rcv_requests_ack')),
          String(pick(lbStats, 'rcv_requests_bye')),
          '',
          '',
        ],
      ]),
    );
    say('');
    const s = uac.stats;
    const c = hb.core.counters;
    say(
      `calls: ${s.successful} completed, ${s.failed} failed of ${s.created}; retransmissions ${s.retransmissions}`,
    );
    say(
      `transparency: the LB saw ${pick(lbStats, 'rcv_requests_ack')} ACK and ${pick(lbStats, 'rcv_requests_bye')} BYE; ` +
        'in-dialog requests and every reply went client <-> backend.',
    );
    say(
      `heartbeat: ${c.probesSent} probes, ${c.accepted.report} signed reports accepted, ${c.misses} missed`,
    );
    say(
      'weights here are static (proportional to capacity); the controller loop will make them follow the measured load.',
    );
    return s.failed === 0 && s.successful === CALLS ? 0 : 1;
  } finally {
    await stop();
    say('lab down');
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`demo failed: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
