/**
 * /metrics scraped from a running controller in a real lab (127.14.x.x): the per-backend series
 * with their labels, values that agree with the API and with the LB itself, push and heartbeat
 * counters that move when something happens (datagrams the controller must drop, an agent that
 * stops answering).
 */
import { expect } from 'chai';
import { createSocket } from 'node:dgram';
import { writeFileSync } from 'node:fs';
import { effectiveWeight } from '../../src/kamailio/dispatcher-list-reply.js';
import { formatDispatcherList } from '../../src/kamailio/dispatcher-list.js';
import { fetchDispatcherList, fetchEffectiveWeights } from '../../src/kamailio/fetch-dispatcher-list.js';
import type { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { freezeMember } from '../../src/lab/lab-control.js';
import { SIGNAL_NAMES } from '../../src/scoring/index.js';
import { eventually } from '../support/harness.js';
import { labRpc } from '../support/lb-watch.js';
import {
  http,
  parseMetrics,
  sample,
  startApiLab,
  waitReady,
  type ApiLab,
  type Sample,
} from './api-support.js';

describe('Prometheus /metrics from a controller in the lab (127.14.x.x)', function () {
  this.timeout(180000);
  let t: ApiLab | undefined;
  let rpc: KamailioRpcClient | undefined;
  let frozen = false;

  const scrape = async (): Promise<Sample[]> => {
    const r = await http('GET', `${t!.base}/metrics`);
    expect(r.status).to.equal(200);
    expect(r.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
    return parseMetrics(r.text);
  };
  const value = (s: Sample[], name: string, labels: Record<string, string>) => sample(s, name, labels)?.value;
  const sum = (s: Sample[], name: string, labels: Record<string, string> = {}) =>
    s
      .filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v))
      .reduce((a, x) => a + x.value, 0);

  before(async function () {
    t = await startApiLab({ backends: 2, net: 14, controller: true });
    rpc = labRpc(t.lab);
    await waitReady(t.base);
    await eventually(
      async () => {
        const s = await scrape();
        return ['be1', 'be2'].every(
          (b) =>
            value(s, 'sipweigh_backend_state', { backend: b, state: 'up' }) === 1 &&
            (value(s, 'sipweigh_backend_weight', { backend: b, node: 'lb1' }) ?? 0) > 0,
        );
      },
      'both backends up with a weight at lb1 in /metrics',
      60000,
    );
  });

  after(async function () {
    if (frozen) freezeMember(t!.lab, 'agent-be2', false);
    rpc?.close();
    await t?.lab.stop();
  });

  it('has the per-backend series with backend and set labels, one-hot state', async function () {
    const s = await scrape();
    for (const b of ['be1', 'be2']) {
      const labels = { backend: b, set: '1' };
      const states = s.filter((x) => x.name === 'sipweigh_backend_state' && x.labels.backend === b);
      expect(states.map((x) => x.labels.state).sort()).to.deep.equal([
        'down',
        'draining',
        'returning',
        'suspect',
        'up',
      ]);
      expect(
        states.reduce((a, x) => a + x.value, 0),
        `${b} one-hot`,
      ).to.equal(1);
      expect(value(s, 'sipweigh_backend_drained', labels)).to.equal(0);
      expect(value(s, 'sipweigh_backend_capacity_cps', labels)).to.equal(100);
      const factor = value(s, 'sipweigh_backend_derating_factor', labels);
      expect(factor).to.be.within(0.05, 1);
      expect(value(s, 'sipweigh_backend_effective_capacity_cps', labels)).to.be.within(1, 100);
      expect(value(s, 'sipweigh_backend_heartbeat_rtt_seconds', labels)).to.be.within(0.00001, 1);
      expect(value(s, 'sipweigh_backend_heartbeat_misses_total', labels)).to.be.a('number');
      expect(value(s, 'sipweigh_backend_report_age_seconds', labels)).to.be.within(0, 10);
      const signals = s.filter((x) => x.name === 'sipweigh_backend_signal' && x.labels.backend === b);
      expect(signals.map((x) => x.labels.signal)).to.include('options_rtt_ms');
      for (const x of signals) expect(SIGNAL_NAMES as readonly string[]).to.include(x.labels.signal);
    }
  });

  it('the weight series agree with the API and with what the LB lists', async function () {
    // Settled weights: the controller moves them step by step, so compare at a quiet moment.
    await eventually(
      async () => {
        const s = await scrape();
        const lb = await fetchEffectiveWeights(rpc!, { deadlineMs: 2000 });
        const api = (await http('GET', `${t!.base}/api/v1/backends`)).json as {
          backends: { id: string; weights: { lb1: number } }[];
        };
        return ['be1', 'be2'].every((b) => {
          const m = value(s, 'sipweigh_backend_weight', { backend: b, set: '1', node: 'lb1' });
          return (
            m !== undefined && m === lb?.get(b) && m === api.backends.find((x) => x.id === b)?.weights.lb1
          );
        });
      },
      'metrics, API and LB to agree on the weights',
      30000,
      250,
    );
  });

  it('counts pushes by outcome with their latency, and LB nodes in sync', async function () {
    const s = await scrape();
    const pushes = sum(s, 'sipweigh_lb_pushes_total', { node: 'lb1' });
    expect(pushes).to.be.greaterThan(0);
    expect(sum(s, 'sipweigh_lb_push_duration_seconds_count', { node: 'lb1' })).to.equal(pushes);
    expect(sum(s, 'sipweigh_lb_push_errors_total', { node: 'lb1' })).to.equal(0);
    expect(value(s, 'sipweigh_lb_node_synced', { node: 'lb1' })).to.equal(1);
    expect(value(s, 'sipweigh_set_mode', { set: '1', mode: 'scored' })).to.equal(1);
    expect(value(s, 'sipweigh_set_admission_limit_cps', { set: '1' })).to.be.greaterThan(0);
    expect(sample(s, 'sipweigh_process_cpu_seconds_total', {})).to.not.equal(undefined);
    expect(sample(s, 'sipweigh_nodejs_eventloop_lag_p99_seconds', {})).to.not.equal(undefined);
  });

  it('counts heartbeat datagrams it drops, by reason', async function () {
    const before = await scrape();
    for (const reason of ['truncated', 'malformed', 'bad_mac', 'replayed'])
      expect(sample(before, 'sipweigh_heartbeat_dropped_total', { reason }), reason).to.not.equal(undefined);
    const junk = ['x', 'not a heartbeat datagram at all, just text that is long enough', '\x00\x01\x02\x03'];
    const sock = createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.14.0.5', () => r()));
    const hb = t!.lab.state.plan.controller.heartbeat;
    for (const j of junk)
      await new Promise<void>((r) => sock.send(Buffer.from(j), hb.port, hb.address, () => r()));
    sock.close();
    await eventually(
      async () =>
        sum(await scrape(), 'sipweigh_heartbeat_dropped_total') >=
        sum(before, 'sipweigh_heartbeat_dropped_total') + junk.length,
      'the junk datagrams to be counted as dropped',
      20000,
    );
  });

  it('an LB list changed behind the controller is repaired at the next reconcile, and counted as drift', async function () {
    const { state } = t!.lab;
    const before = sum(await scrape(), 'sipweigh_lb_drift_repairs_total', { node: 'lb1' });
    // An operator's edit: be1 down to weight 1 in the LB's own file, reloaded by hand.
    const edited = (await fetchDispatcherList(rpc!, { deadlineMs: 2000 }))!;
    expect(edited.ok).to.equal(true);
    const targets = edited.ok ? edited.targets : [];
    writeFileSync(
      state.dispatcher_list,
      formatDispatcherList(
        targets.map((x) => ({
          setId: x.setId,
          uri: x.uri,
          state: 'active' as const,
          rweight: x.duid === 'be1' ? 1 : effectiveWeight(x),
          duid: x.duid!,
        })),
      ),
    );
    await rpc!.call('dispatcher.reload', []);
    expect((await fetchEffectiveWeights(rpc!, { deadlineMs: 2000 }))?.get('be1')).to.equal(1);
    // The lab reconciles every 5 s.
    await eventually(
      async () => sum(await scrape(), 'sipweigh_lb_drift_repairs_total', { node: 'lb1' }) > before,
      'a drift repair to be counted',
      30000,
    );
    expect((await fetchEffectiveWeights(rpc!, { deadlineMs: 2000 }))?.get('be1')).to.be.greaterThan(1);
    const nodes = (await http('GET', `${t!.base}/api/v1/lb-nodes`)).json as {
      lb_nodes: { drift_repairs: number }[];
    };
    expect(nodes.lb_nodes[0]!.drift_repairs).to.be.greaterThan(0);
  });

  it('an agent that stops answering: misses count up, state goes down, weight at lb1 goes to 0', async function () {
    const b = { backend: 'be2', set: '1' };
    const missesBefore = value(await scrape(), 'sipweigh_backend_heartbeat_misses_total', b) ?? 0;
    freezeMember(t!.lab, 'agent-be2', true);
    frozen = true;
    const s = await eventually(
      async () => {
        const x = await scrape();
        return value(x, 'sipweigh_backend_state', { ...b, state: 'down' }) === 1 &&
          value(x, 'sipweigh_backend_weight', { ...b, node: 'lb1' }) === 0
          ? x
          : null;
      },
      'be2 down with weight 0 in /metrics',
      30000,
    );
    expect(value(s, 'sipweigh_backend_heartbeat_misses_total', b)).to.be.at.least(missesBefore + 3);
    expect(value(s, 'sipweigh_backend_state', { ...b, state: 'up' })).to.equal(0);
    expect((await fetchEffectiveWeights(rpc!, { deadlineMs: 2000 }))?.get('be2')).to.equal(0);
    freezeMember(t!.lab, 'agent-be2', false);
    frozen = false;
  });
});
