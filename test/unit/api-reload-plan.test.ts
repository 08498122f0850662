/** What POST /api/v1/reload and SIGHUP would apply (src/controller/reload-plan.ts), on configs as the loader makes them. */
import { expect } from 'chai';
import { configFromData } from '../../src/config/load.js';
import type { ControllerConfig } from '../../src/config/types.js';
import { nothingChanged, planReload } from '../../src/controller/reload-plan.js';

const KEY = 'ab'.repeat(32);
const OTHER_KEY = 'cd'.repeat(32);
const RPC_PASSWORD = 'rpc-password-7f3a';

/** The fields the cases edit (the rest passes through to the loader as it is). */
interface Draft {
  heartbeat: {
    listen: { port: number };
    master_key: string;
    previous_master_key?: string;
    probe_interval_ms?: number;
  };
  lb_nodes: { name: string; rpc: { password: string } }[];
  sets: { id: number; self_registration?: boolean; backends?: Record<string, unknown>[] }[];
  api?: { port: number };
  [more: string]: unknown;
}

function base(): Draft {
  return {
    kind: 'controller',
    heartbeat: { listen: { address: '127.14.0.10', port: 7950 }, master_key: KEY },
    lb_nodes: [
      {
        name: 'lb1',
        rpc: { url: 'http://127.14.0.10:5071/RPC', username: 'sw', password: RPC_PASSWORD },
        dispatcher_list: { path: '/tmp/ds.list' },
      },
    ],
    sets: [
      {
        id: 1,
        backends: [
          {
            id: 'be1',
            sip_uri: 'sip:127.14.0.11:5060',
            capacity: 50,
            agent: { address: '127.14.0.11', port: 7951 },
          },
          {
            id: 'be2',
            sip_uri: 'sip:127.14.0.12:5060',
            capacity: 50,
            agent: { address: '127.14.0.12', port: 7951 },
          },
        ],
      },
    ],
    api: { listen: '127.14.0.10', port: 9060 },
  } as unknown as Draft;
}

const load = (data: Draft): ControllerConfig =>
  configFromData('/etc/sipweigh/controller.yaml', data) as ControllerConfig;

function edit(fn: (d: Draft) => void): ControllerConfig {
  const d = base();
  fn(d);
  return load(d);
}

describe('reload plan', function () {
  const running = load(base());

  it('the same file again changes nothing', function () {
    const plan = planReload(running, load(base()));
    expect(plan.ok).to.equal(true);
    expect(plan.ok && nothingChanged(plan.changes)).to.equal(true);
  });

  it('names backends added, removed and changed', function () {
    const next = edit((d) => {
      const bes = d.sets[0]!.backends!;
      bes.shift();
      bes[0]!.capacity = 80;
      bes.push({
        id: 'be3',
        sip_uri: 'sip:127.14.0.13:5060',
        capacity: 50,
        agent: { address: '127.14.0.13', port: 7951 },
      });
    });
    const plan = planReload(running, next);
    expect(plan).to.deep.include({ ok: true });
    expect(plan.ok && plan.changes.backends).to.deep.equal({
      added: ['be3'],
      removed: ['be1'],
      changed: ['be2'],
    });
  });

  it('applies scoring, admission, schedules and logging live', function () {
    const next = edit((d) => {
      d.scoring = { cycle_ms: 500, slow_start_ms: 7000, signals: { load1: { knee: 8 } } };
      d.admission = { enabled: false };
      d.schedules = { reconcile: '*/10 * * * * *' };
      d.logging = { level: 'debug' };
    });
    const plan = planReload(running, next);
    if (!plan.ok) throw new Error(plan.restart.join(', '));
    expect(plan.changes.scoring).to.include.members([
      'cycle_ms',
      'params.slow_start_ms',
      'params.signals.load1',
    ]);
    expect(plan.changes.admission).to.equal(true);
    expect(plan.changes.schedules).to.equal(true);
    expect(plan.changes.logging_level).to.deep.equal({ from: 'info', to: 'debug' });
    expect(nothingChanged(plan.changes)).to.equal(false);
  });

  it('applies a master key rotation live: new current, old as previous, then old dropped', function () {
    const rotating = edit((d) => {
      d.heartbeat.master_key = OTHER_KEY;
      d.heartbeat.previous_master_key = KEY;
    });
    const start = planReload(running, rotating);
    if (!start.ok) throw new Error(start.restart.join(', '));
    expect(start.changes.heartbeat_keys).to.equal(true);
    expect(nothingChanged(start.changes)).to.equal(false);
    const end = planReload(
      rotating,
      edit((d) => (d.heartbeat.master_key = OTHER_KEY)),
    );
    expect(end.ok && end.changes.heartbeat_keys).to.equal(true);
    const same = planReload(rotating, rotating);
    expect(same.ok && same.changes.heartbeat_keys).to.equal(false);
  });

  it('refuses, naming each field, what needs a restart', function () {
    const cases: [(d: Draft) => void, string][] = [
      [(d) => (d.heartbeat.listen.port = 7951), 'heartbeat.listen'],
      [(d) => (d.heartbeat.probe_interval_ms = 100), 'heartbeat.probe_interval_ms'],
      [(d) => (d.lb_nodes[0]!.rpc.password = 'another-password'), 'lb_nodes[lb1].rpc'],
      [(d) => (d.lb_nodes[0]!.name = 'lb9'), 'lb_nodes[lb9] (added)'],
      [(d) => (d.api!.port = 9061), 'api.port'],
      [(d) => delete d.api, 'api (removed)'],
      [(d) => d.sets.push({ id: 2 }), 'sets[id=2] (added)'],
      [(d) => (d.sets[0]!.self_registration = true), 'sets[id=1].self_registration'],
    ];
    for (const [fn, field] of cases) {
      const plan = planReload(running, edit(fn));
      expect(plan.ok, field).to.equal(false);
      expect(plan.ok ? [] : plan.restart, field).to.include(field);
    }
  });

  it('never carries a secret value in what it reports', function () {
    const plan = planReload(
      running,
      edit((d) => {
        d.heartbeat.master_key = OTHER_KEY;
        d.lb_nodes[0]!.rpc.password = 'new-secret-password';
      }),
    );
    const text = JSON.stringify(plan);
    for (const secret of [KEY, OTHER_KEY, RPC_PASSWORD, 'new-secret-password'])
      expect(text).to.not.contain(secret);
  });
});
