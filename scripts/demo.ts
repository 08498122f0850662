/**
 * `npm run demo`: the local lab at work. Three backends of unequal emulated capacity behind the
 * transparent LB, a short sipp load through it, then what each backend got and what the LB saw.
 * Everything runs on loopback and is stopped by PID at the end (also on Ctrl-C or failure).
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { KamailioRpcClient } from '../src/kamailio/rpc.js';
import { LAB_SCENARIOS, startLab, type RunningLab } from '../src/lab/lab.js';
import { runSippClient } from '../src/lab/sipp.js';
import { initialDestinations } from '../src/lab/lab.js';

const CAPACITIES = [50, 100, 200];
const RATE = 60; // calls/s offered: well below the pool's 350
const CALLS = 240;

type Counters = Record<string, number>;

async function coreStats(url: string, auth?: { username: string; password: string }): Promise<Counters> {
  const rpc = new KamailioRpcClient({ url, ...(auth ?? {}), deadlineMs: 2000 });
  try {
    return (await rpc.call('stats.fetchn', ['core:'])) as Counters;
  } finally {
    rpc.close();
  }
}

const pick = (c: Counters, name: string) => c[`core.${name}`] ?? c[`core:${name}`] ?? 0;

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
    `sipweigh demo: LB 127.0.0.10, ${CAPACITIES.length} backends of ${CAPACITIES.join('/')} calls/s (emulated), ${CALLS} calls at ${RATE}/s`,
  );
  let lab: RunningLab | undefined;
  const stop = async () => {
    if (lab) await lab.stop();
    lab = undefined;
  };
  process.once('SIGINT', () => void stop().then(() => process.exit(130)));
  try {
    lab = await startLab({
      backends: CAPACITIES.length,
      capacities: CAPACITIES,
      dir: join(tmpdir(), 'sipweigh-demo'),
      shmMb: 128,
    });
    const { plan } = lab.state;
    say('lab up; sending calls through the LB...');
    const uac = await runSippClient(lab.group, {
      name: 'uac',
      scenario: LAB_SCENARIOS.uac,
      localIp: plan.client.address,
      localPort: 5060,
      remote: `${plan.lb.sip.address}:${plan.lb.sip.port}`,
      rate: RATE,
      maxCalls: CALLS,
      timeoutS: 60,
      extraArgs: ['-d', '200'],
    });
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
        ['backend', 'capacity/s', 'rweight', 'INVITEs', 'share', 'ACKs', 'BYEs'],
        ...plan.backends.map((b, i) => [
          `${b.id} ${b.sip.address}`,
          String(b.emulation?.callsPerSecond ?? '-'),
          String(weights[i]),
          String(invites[i]),
          `${((100 * (invites[i] ?? 0)) / total).toFixed(1)} %`,
          String(pick(perBackend[i]!, 'rcv_requests_ack')),
          String(pick(perBackend[i]!, 'rcv_requests_bye')),
        ]),
        [
          'LB 127.0.0.10',
          '',
          '',
          String(pick(lbStats, 'rcv_requests_invite')),
          '',
          String(pick(lbStats, 'rcv_requests_ack')),
          String(pick(lbStats, 'rcv_requests_bye')),
        ],
      ]),
    );
    say('');
    const s = uac.stats;
    say(
      `calls: ${s.successful} completed, ${s.failed} failed of ${s.created}; retransmissions ${s.retransmissions}`,
    );
    say(
      `transparency: the LB saw ${pick(lbStats, 'rcv_requests_ack')} ACK and ${pick(lbStats, 'rcv_requests_bye')} BYE — in-dialog requests went client <-> backend.`,
    );
    say('static weights here (proportional to capacity); the controller makes them follow measured load.');
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
