/**
 * The telemetry counts what the controller's events say: pushes and reloads reach /metrics only
 * through the event observer, never through a direct call.
 */
import { expect } from 'chai';
import type { ReloadChanges } from '../../src/controller/reload-plan.js';
import { ControllerTelemetry } from '../../src/telemetry/metrics.js';
import { initialWatchState } from '../../src/controller/lb-watch.js';
import type { ControllerSnapshot } from '../../src/controller/snapshot.js';
import type { ProbeCounters } from '../../src/probe/probe-core.js';

async function value(t: ControllerTelemetry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = t.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const got = await metric.get();
  const v = got.values.find((x) => Object.entries(labels).every(([k, l]) => String(x.labels[k]) === l));
  return v?.value ?? 0;
}

describe('ControllerTelemetry.observe', function () {
  it('counts applied and refused reloads from config_reloaded / config_reload_refused', async function () {
    const t = new ControllerTelemetry({ processMetrics: false });
    const changes: ReloadChanges = {
      backends: { added: [], removed: [], changed: [] },
      scoring: [],
      admission: false,
      schedules: false,
      logging_level: null,
      status_file: false,
      api_auth: false,
      heartbeat_keys: false,
    };
    t.observe({
      type: 'config_reloaded',
      trigger: 'SIGHUP',
      file: 'c.yaml',
      changes,
      unchanged: true,
      time: 1,
    });
    t.observe({
      type: 'config_reloaded',
      trigger: 'api',
      file: 'c.yaml',
      changes,
      unchanged: false,
      time: 2,
    });
    t.observe({ type: 'config_reload_refused', trigger: 'api', file: 'c.yaml', error: 'x: bad', time: 3 });
    expect(await value(t, 'sipweigh_config_reloads_total', { result: 'applied' })).to.equal(2);
    expect(await value(t, 'sipweigh_config_reloads_total', { result: 'refused' })).to.equal(1);
  });

  it('counts a failed push as a push and an error, and a drift repair', async function () {
    const t = new ControllerTelemetry({ processMetrics: false });
    const push = {
      type: 'node_push',
      node: 'lb1',
      changes: 1,
      ms: 5,
      stage: null,
      error: null,
      failures: 0,
    } as const;
    t.observe({ ...push, outcome: 'applied', drift_repaired: true, time: 1 });
    t.observe({ ...push, outcome: 'failed', drift_repaired: false, stage: 'write', error: 'eio', time: 2 });
    expect(await value(t, 'sipweigh_lb_pushes_total', { node: 'lb1', outcome: 'applied' })).to.equal(1);
    expect(await value(t, 'sipweigh_lb_pushes_total', { node: 'lb1', outcome: 'failed' })).to.equal(1);
    expect(await value(t, 'sipweigh_lb_push_errors_total', { node: 'lb1' })).to.equal(1);
    expect(await value(t, 'sipweigh_lb_drift_repairs_total', { node: 'lb1' })).to.equal(1);
  });

  it('counts evidence suspects from events, and reads lease, backstop and retransmissions from the watch', async function () {
    const t = new ControllerTelemetry({ processMetrics: false });
    t.observe({ type: 'evidence_suspect', backend: 'be1', set: 1, retransmissions: 3, time: 1 });
    expect(await value(t, 'sipweigh_backend_evidence_suspects_total', { backend: 'be1', set: '1' })).to.equal(
      1,
    );
    const w = {
      ...initialWatchState('lb1'),
      backstop: true,
      leaseRefreshes: { ok: 7, failed: 2 },
      backstopSwitches: { on: 1, off: 0 },
      totals: new Map([['sip:127.0.0.11:5060', { rtx: 5, redispatch: 4 }]]),
    };
    t.attach({
      snapshot: () => ({ watch: [w] }) as unknown as ControllerSnapshot,
      probeCounters: () => null as unknown as ProbeCounters,
    });
    expect(await value(t, 'sipweigh_lb_lease_refreshes_total', { node: 'lb1', outcome: 'failed' })).to.equal(
      2,
    );
    expect(await value(t, 'sipweigh_lb_backstop', { node: 'lb1' })).to.equal(1);
    expect(await value(t, 'sipweigh_lb_backstop_switches_total', { node: 'lb1', to: 'on' })).to.equal(1);
    const dest = { node: 'lb1', destination: 'sip:127.0.0.11:5060' };
    expect(await value(t, 'sipweigh_lb_retransmissions_total', dest)).to.equal(5);
    expect(await value(t, 'sipweigh_lb_redispatched_total', dest)).to.equal(4);
  });
});
