/**
 * A reload is all or nothing (Controller.applyConfig): when the new calendar cannot start, the old
 * config stays wholly in force (its backends, its calendar, the config the reloader compares with).
 * A real controller on loopback (127.16.77.x) with an LB node nobody answers for; the calendar is
 * injected so that starting it fails on demand.
 */
import { expect } from 'chai';
import { configFromData } from '../../src/config/load.js';
import type { ControllerConfig, SchedulesConfig } from '../../src/config/types.js';
import { Controller } from '../../src/controller/controller.js';
import type { SchedulesFactory } from '../../src/controller/schedules.js';
import { planReload } from '../../src/controller/reload-plan.js';
import type { JobStatus, Schedules } from '../../src/controller/schedules.js';
import { silentLogger } from '../../src/util/logger.js';

const backend = (id: string, n: number) => ({
  id,
  sip_uri: `sip:127.16.77.${n}:5060`,
  capacity: 50,
  agent: { address: `127.16.77.${n}`, port: 7951 },
});

function config(backends: string[], maintenance: object[], cycleMs: number): ControllerConfig {
  return configFromData('/etc/sipweigh/controller.yaml', {
    kind: 'controller',
    heartbeat: { listen: { address: '127.16.77.10', port: 7990 }, master_key: 'ab'.repeat(32) },
    lb_nodes: [
      {
        name: 'lb1',
        rpc: { url: 'http://127.16.77.10:1/RPC', timeout_ms: 500 },
        dispatcher_list: { path: '/nonexistent/sipweigh-test/ds.list' },
      },
    ],
    sets: [{ id: 1, backends: backends.map((id, i) => backend(id, 11 + i)) }],
    scoring: { cycle_ms: cycleMs },
    schedules: { maintenance },
  }) as ControllerConfig;
}

class FakeSchedules implements Schedules {
  running = false;
  constructor(
    readonly config: SchedulesConfig,
    private readonly failToStart: boolean,
  ) {}
  start(): Promise<void> {
    if (this.failToStart) return Promise.reject(new Error('cannot start the calendar'));
    this.running = true;
    return Promise.resolve();
  }
  stop(): Promise<void> {
    this.running = false;
    return Promise.resolve();
  }
  status(): JobStatus[] {
    return this.config.maintenance.map((m) => ({
      name: `drain ${m.backend}`,
      expression: m.drain ?? '',
      nextRun: null,
      lastRun: null,
      lastError: null,
    }));
  }
}

describe('Controller.applyConfig: a reload that fails is not half applied', function () {
  this.timeout(10_000);
  let controller: Controller | null = null;
  afterEach(async () => {
    await controller?.stop();
    controller = null;
  });

  it('the new calendar fails to start: backends, calendar and config stay as they were; a later reload applies', async function () {
    const made: FakeSchedules[] = [];
    let failNext = false;
    const factory: SchedulesFactory = (cfg) => {
      const s = new FakeSchedules(cfg, failNext);
      made.push(s);
      return s;
    };
    const before = config(['be1', 'be2'], [], 1000);
    controller = await Controller.start(before, { logger: silentLogger, schedules: factory });
    const after = config(['be2', 'be3'], [{ backend: 'be2', drain: '0 3 * * *' }], 2000);
    const plan = planReload(before, after);
    if (!plan.ok) throw new Error(`plan refused: ${plan.restart.join(', ')}`);
    expect(plan.changes.schedules).to.equal(true);

    failNext = true;
    let error: Error | null = null;
    await controller.applyConfig(after, plan.changes).catch((e: Error) => (error = e));
    expect(error, 'applyConfig rejects').to.be.instanceOf(Error);
    expect(controller.config).to.equal(before);
    expect(controller.probe.list().map((v) => v.id)).to.have.members(['be1', 'be2']);
    expect(made).to.have.length(2);
    expect(made[0]!.running, 'the old calendar still runs').to.equal(true);
    expect(made[1]!.running, 'nothing of the new calendar runs').to.equal(false);
    expect(controller.status().schedules).to.deep.equal([]);

    failNext = false;
    await controller.applyConfig(after, plan.changes);
    expect(controller.config).to.equal(after);
    expect(controller.probe.list().map((v) => v.id)).to.have.members(['be2', 'be3']);
    expect(made[0]!.running, 'the old calendar stopped').to.equal(false);
    expect(made[2]!.running, 'the new calendar runs').to.equal(true);
    expect(controller.status().schedules.map((j) => j.name)).to.deep.equal(['drain be2']);
  });
});
