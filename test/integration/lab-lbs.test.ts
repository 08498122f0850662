/**
 * Issue 16, part 4: `sipweigh lab up --lbs 2` run as an operator runs it (the CLI as a process),
 * on 127.57.x.x (used by no other test): two Kamailio LBs, lb1 on 127.57.0.10 and lb2 on
 * 127.57.0.30, each with its own JSON-RPC socket and list file and DMQ between them; two backends,
 * their agents and the controller. Seen from outside only: each LB's JSON-RPC, the controller's API,
 * the lab's state file and /proc.
 */
import { expect } from 'chai';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { fetchEffectiveWeights } from '../../src/kamailio/fetch-dispatcher-list.js';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import type { LabState } from '../../src/lab/lab.js';
import { pidAlive, ProcessGroup, signalGroup } from '../../src/lab/processes.js';
import { LAB_SCENARIOS } from '../../src/lab/scenarios.js';
import { runSippClient } from '../../src/lab/sipp.js';
import { labClient } from '../../src/lab/topology.js';
import { http } from './api-support.js';
import { sipweigh } from '../support/cli.js';
import { eventually } from '../support/harness.js';

const NET = '57';
const LB1 = '127.57.0.10';
const LB2 = '127.57.0.30';
const DMQ_PORT = 5090;

/** /proc, read once: pid -> [process group, command line]. */
function processTable(): Map<number, { pgrp: number; cmdline: string }> {
  const table = new Map<number, { pgrp: number; cmdline: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // After the command's closing parenthesis: state, ppid, pgrp.
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').replaceAll('\0', ' ');
      table.set(Number(entry), { pgrp: Number(pgrp), cmdline });
    } catch {
      // exited meanwhile
    }
  }
  return table;
}

/**
 * Every live process of the lab in `dir`: in a member's process group (a Kamailio's workers, a
 * member itself), or naming the lab's directory on its command line (every Kamailio, sipp, agent
 * and controller the lab starts does: its run directory, log or config is there).
 */
function labProcesses(dir: string, memberPids: readonly number[]): string[] {
  const groups = new Set(memberPids);
  return [...processTable()]
    .filter(([pid, p]) => pid !== process.pid && (groups.has(p.pgrp) || p.cmdline.includes(dir)))
    .map(([pid, p]) => `${pid} ${p.cmdline.slice(0, 120)}`);
}

/** Stops whatever of the lab in `dir` still runs, by the process ids found (after a failure). */
function killLeftovers(dir: string, memberPids: readonly number[]): void {
  for (const line of labProcesses(dir, memberPids)) signalGroup(Number(line.split(' ')[0]), 'SIGKILL');
}

describe('sipweigh lab up --lbs 2: two LB nodes with DMQ between them (real Kamailio and sipp)', function () {
  this.timeout(240000);
  const dir = mkdtempSync(join(tmpdir(), 'sipweigh-lab-lbs-'));
  const client = new ProcessGroup(mkdtempSync(join(tmpdir(), 'sipweigh-lab-lbs-client-')));
  let state: LabState | undefined;
  const rpcs = new Map<number, KamailioRpcClient>();
  const memberPids = () => (state?.members ?? []).map((m) => m.pid);

  /** The JSON-RPC client of LB `i` of the lab, with the lab's credentials (one per LB). */
  function lbRpc(i: number): KamailioRpcClient {
    const known = rpcs.get(i);
    if (known) return known;
    const lb = state!.plan.lbs[i]!;
    const rpc = new KamailioRpcClient({
      url: `http://${lb.rpc.address}:${lb.rpc.port}/RPC`,
      username: lb.rpc.username,
      password: lb.rpc.password,
    });
    rpcs.set(i, rpc);
    return rpc;
  }

  after(async function () {
    this.timeout(60000);
    // Whatever happened above: the client, the lab by its own `down`, then anything left by PID.
    await client.stopAll();
    rpcs.forEach((r) => r.close());
    sipweigh('lab', 'down', '--dir', dir);
    killLeftovers(dir, memberPids());
  });

  it('starts lb1 and lb2 on their own addresses, each in the state, the members and lb_nodes', () => {
    const r = sipweigh('lab', 'up', '--lbs', '2', '--backends', '2', '--net', NET, '--dir', dir, '--json');
    expect(r.code, r.err).to.equal(0);
    state = JSON.parse(r.out) as LabState;
    expect(state.plan.lbs.map((l) => l.sip.address)).to.deep.equal([LB1, LB2]);
    expect(state.plan.lb.sip.address).to.equal(LB1);
    expect(state.lbs?.map((l) => [l.name, l.member, l.rpc_url, l.dmq])).to.deep.equal([
      ['lb1', 'lb', `http://${LB1}:5071/RPC`, `sip:${LB1}:${DMQ_PORT}`],
      ['lb2', 'lb2', `http://${LB2}:5071/RPC`, `sip:${LB2}:${DMQ_PORT}`],
    ]);
    expect(state.lbs?.map((l) => l.dispatcher_list)).to.deep.equal([
      join(dir, 'dispatcher.list'),
      join(dir, 'dispatcher-lb2.list'),
    ]);
    const lbMembers = state.members.filter((m) => m.role === 'lb');
    expect(lbMembers.map((m) => m.name)).to.deep.equal(['lb', 'lb2']);
    expect(lbMembers[1]!.endpoints).to.deep.include({ transport: 'udp', address: LB2, port: DMQ_PORT });
    for (const m of state.members) expect(pidAlive(m.pid), m.name).to.equal(true);

    const cfg = parse(readFileSync(state.configs.controller, 'utf8')) as {
      lb_nodes: { name: string; rpc: { url: string }; dispatcher_list: { path: string } }[];
    };
    expect(cfg.lb_nodes.map((n) => [n.name, n.rpc.url, n.dispatcher_list.path])).to.deep.equal(
      state.lbs!.map((l) => [l.name, l.rpc_url, l.dispatcher_list]),
    );
    const v = sipweigh('validate', state.configs.controller);
    expect(v.code, v.err).to.equal(0);

    const status = sipweigh('lab', 'status', '--dir', dir, '--json');
    expect(status.code, status.err).to.equal(0);
    const s = JSON.parse(status.out) as { running: boolean; members: { name: string; bound: boolean }[] };
    expect(s.running).to.equal(true);
    expect(s.members.filter((m) => m.name.startsWith('lb')).map((m) => [m.name, m.bound])).to.deep.equal([
      ['lb', true],
      ['lb2', true],
    ]);
  });

  it('both LBs answer JSON-RPC, and each lists the other as an active DMQ node', async () => {
    for (const [i, self, other] of [
      [0, LB1, LB2],
      [1, LB2, LB1],
    ] as const) {
      const rpc = lbRpc(i);
      expect(await rpc.call('core.version'), `LB ${self}`).to.be.a('string');
      await eventually(
        async () => {
          const nodes = (await rpc.call('dmq.list_nodes')) as {
            host: string;
            port: string;
            status: string;
            local: number;
          }[];
          const peer = nodes.find((n) => n.host === other && n.port === String(DMQ_PORT));
          const me = nodes.find((n) => n.host === self && n.local === 1);
          return peer?.status === 'active' && peer.local === 0 && me !== undefined && nodes.length === 2;
        },
        `${self} lists ${other}:${DMQ_PORT} as an active DMQ peer`,
        20000,
      );
    }
  });

  it("an INVITE through lb1 (sipp) leaves its Call-ID entry, lb1's backend, readable at lb2", async () => {
    const callId = `lab-lbs-${process.pid}-1`;
    const r = await runSippClient(client, {
      name: 'uac-lb1',
      scenario: LAB_SCENARIOS.uac,
      ...labClient(state!.plan),
      rate: 1,
      maxCalls: 1,
      timeoutS: 30,
      // A Call-ID known beforehand (sipp's -cid_str; %u is the call number): the key to read back.
      extraArgs: ['-cid_str', `lab-lbs-${process.pid}-%u`],
    });
    expect(r.stats.successful, `sipp exit ${r.exit.code}`).to.equal(1);
    const entry = async (i: number): Promise<string | undefined> => {
      try {
        const reply = (await lbRpc(i).call('htable.get', ['sipweigh_callid', callId])) as {
          item?: { value?: unknown };
        };
        return typeof reply.item?.value === 'string' ? reply.item.value : undefined;
      } catch {
        return undefined; // htable.get answers an error for a key it does not hold
      }
    };
    const atLb1 = await entry(0);
    const backends = state!.plan.backends.map((b) => `sip:${b.sip.address}:${b.sip.port}`);
    expect(backends, "lb1's own entry: a backend").to.include(atLb1);
    const atLb2 = await eventually(() => entry(1), `${callId} in lb2's table`, 10000);
    expect(atLb2, 'the same backend at lb2').to.equal(atLb1);
    // The call went through lb1 only: lb2 saw no INVITE, it only holds the replica.
    const lb2Stats = (await lbRpc(1).call('stats.fetchn', ['core:rcv_requests_invite'])) as Record<
      string,
      number
    >;
    expect(lb2Stats['core.rcv_requests_invite']).to.equal(0);
  });

  it('the controller pushes the same weights to both LBs, a drain included', async () => {
    const api = `http://${state!.plan.controller.heartbeat.address}:9060`;
    const weightsAt = (i: number) => fetchEffectiveWeights(lbRpc(i), { deadlineMs: 2000 });
    type ApiBackend = { id: string; state: string; weights: Record<string, number | null> };
    const backends = async () =>
      ((await http('GET', `${api}/api/v1/backends`)).json as { backends: ApiBackend[] }).backends;
    /** Both LBs hold exactly what the controller says it pushed to each, the same for both. */
    const samePushed = async (
      pred: (w: ReadonlyMap<string, number>, states: ReadonlyMap<string, string>) => boolean,
    ) => {
      const [w1, w2, api] = await Promise.all([weightsAt(0), weightsAt(1), backends()]);
      if (!w1 || !w2 || api.length !== 2) return false;
      const fromApi = (lb: string) => new Map(api.map((b) => [b.id, b.weights[lb]]));
      return (
        JSON.stringify([...w1].sort()) === JSON.stringify([...w2].sort()) &&
        JSON.stringify([...fromApi('lb1')].sort()) === JSON.stringify([...w1].sort()) &&
        JSON.stringify([...fromApi('lb2')].sort()) === JSON.stringify([...w2].sort()) &&
        pred(w1, new Map(api.map((b) => [b.id, b.state])))
      );
    };
    await eventually(
      () =>
        samePushed(
          (w, st) =>
            (w.get('be1') ?? 0) > 0 &&
            (w.get('be2') ?? 0) > 0 &&
            st.get('be1') === 'up' &&
            st.get('be2') === 'up',
        ),
      "both LBs holding the controller's weights",
      60000,
      250,
    );
    const drain = sipweigh('drain', 'be1', '--config', state!.configs.controller, '--reason', 'lab-lbs test');
    expect(drain.code, drain.err).to.equal(0);
    await eventually(
      () =>
        samePushed((w, st) => w.get('be1') === 0 && (w.get('be2') ?? 0) > 0 && st.get('be1') === 'draining'),
      'be1 drained (weight 0) at lb1 and at lb2',
      30000,
      250,
    ).catch(async (e: unknown) => {
      const api = (await backends()).map((b) => `${b.id} ${b.state} ${JSON.stringify(b.weights)}`);
      const lb = async (i: number) => JSON.stringify([...((await weightsAt(i)) ?? [])]);
      throw new Error(
        `${(e as Error).message}; lb1 ${await lb(0)}, lb2 ${await lb(1)}, API ${api.join('; ')}`,
      );
    });
    const undrain = sipweigh('undrain', 'be1', '--config', state!.configs.controller);
    expect(undrain.code, undrain.err).to.equal(0);
    await eventually(
      () => samePushed((w, st) => (w.get('be1') ?? 0) > 0 && st.get('be1') === 'up'),
      'be1 back at lb1 and at lb2',
      60000,
      250,
    );
  });

  it('lab down stops every member, both LBs included, and leaves no process of the lab', async () => {
    const pids = memberPids();
    const r = sipweigh('lab', 'down', '--dir', dir);
    expect(r.code, r.err).to.equal(0);
    for (const m of state!.members) expect(pidAlive(m.pid), `${m.name} pid ${m.pid}`).to.equal(false);
    // A Kamailio's workers may take a moment after their main process.
    await eventually(() => labProcesses(dir, pids).length === 0, 'no process of the lab left', 5000).catch(
      () => expect(labProcesses(dir, pids), 'processes of the lab still running').to.deep.equal([]),
    );
    expect(sipweigh('lab', 'status', '--dir', dir).code).to.equal(4);
  });
});

describe('sipweigh lab up --lbs 2 failing half-way (lb2 cannot bind its DMQ socket)', function () {
  this.timeout(120000);
  const dir = mkdtempSync(join(tmpdir(), 'sipweigh-lab-lbs-fail-'));
  let blocker: Socket | undefined;

  after(async function () {
    blocker?.close();
    killLeftovers(dir, []);
  });

  it('fails naming lb2, and stops lb1 and everything else it had started', async () => {
    // The test holds lb2's DMQ address: lb2's Kamailio exits at start-up, lb1 beside it came up.
    const socket = createSocket('udp4');
    blocker = socket;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(DMQ_PORT, LB2, () => resolve());
    });
    const r = sipweigh('lab', 'up', '--lbs', '2', '--backends', '1', '--net', NET, '--dir', dir, '--json');
    expect(r.code).to.equal(1);
    expect(r.err).to.match(/lab up failed: kamailio lb2 exited during start-up/);
    expect(existsSync(join(dir, 'lb.log')), 'lb1 was started beside it').to.equal(true);
    expect(labProcesses(dir, []), 'processes of the failed lab still running').to.deep.equal([]);
    // Nothing to take down: no state was written.
    expect(sipweigh('lab', 'status', '--dir', dir).code).to.equal(4);
  });
});
