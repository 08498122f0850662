/**
 * Issue 15 item 3, the controller side on a real OpenSIPS 3.6 LB:
 * - the OpenSIPS pusher (db_text table written atomically, dbt_reload + ds_reload, ds_list read back
 *   and verified; a new destination gets its literal send() through reload_routes; states over MI);
 * - the closed loop: `sipweigh lab up --lb opensips`'s lab with `sipweigh controller` pushing weights
 *   that follow the backends' capacity into the OpenSIPS LB, calls flowing meanwhile.
 * OpenSIPS topologies on 127.47.x.x (pusher) and 127.48.x.x (lab). Skipped without OpenSIPS.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Destination } from '../../src/kamailio/dispatcher-list.js';
import { effectiveWeight } from '../../src/kamailio/dispatcher-list-reply.js';
import { startLab, type RunningLab } from '../../src/lab/lab.js';
import { opensipsAvailable, startOpenSipsLb } from '../../src/lab/opensips.js';
import {
  miStats,
  OSIPS_NET,
  planeDestinations,
  startOsipsPlane,
  type OsipsPlane,
} from '../../src/lab/opensips-dataplane.js';
import { runSippClient } from '../../src/lab/sipp.js';
import { LAB_SCENARIOS } from '../../src/lab/scenarios.js';
import { labClient } from '../../src/lab/topology.js';
import { OpenSipsMiClient } from '../../src/opensips/mi.js';
import { asOpenSips, fetchOpenSipsList, OpenSipsDispatcherPusher } from '../../src/opensips/pusher.js';
import { LocalListFile } from '../../src/push/transports/local-file.js';
import { eventually, SCENARIO_DIR, useProcessGroup } from '../support/harness.js';
import { ratioError } from '../support/lb-watch.js';

async function statesOf(mi: OpenSipsMiClient): Promise<Map<string, string> | null> {
  const list = await fetchOpenSipsList(mi);
  return list.ok ? new Map(list.targets.map((t) => [t.duid ?? t.uri, t.state])) : null;
}

async function weightsOf(mi: OpenSipsMiClient): Promise<Map<string, number> | null> {
  const list = await fetchOpenSipsList(mi);
  return list.ok ? new Map(list.targets.map((t) => [t.duid ?? t.uri, effectiveWeight(t)])) : null;
}

describe('OpenSIPS LB: the push adapter', function () {
  this.timeout(90000);
  const h = useProcessGroup('opensips-push');
  let plane: OsipsPlane;
  let pusher: OpenSipsDispatcherPusher;

  before(async function () {
    if (!opensipsAvailable()) this.skip();
    // A third backend (127.47.0.13) runs but is not in the LB's table at the start.
    plane = await startOsipsPlane(h.group, [{ weight: 50 }, { weight: 50 }, { weight: 50 }]);
    const start = planeDestinations([{ weight: 50 }, { weight: 50 }]);
    pusher = new OpenSipsDispatcherPusher({
      mi: plane.mi,
      table: new LocalListFile({ path: plane.lb.files.table }),
      destinations: new LocalListFile({ path: plane.lb.files.destinations }),
    });
    // The LB was started with a three-line table: bring it to two first (also writes the routes once).
    const first = await pusher.push(start);
    expect(first.kind, JSON.stringify(first)).to.equal('applied');
  });
  after(() => plane?.mi.close());

  it('pushes weights: table rewritten, reloaded, read back equal; a second push of the same is in sync', async function () {
    const desired: Destination[] = planeDestinations([{ weight: 20 }, { weight: 80 }]);
    const out = await pusher.push(desired);
    expect(out.kind, JSON.stringify(out)).to.equal('applied');
    expect(await weightsOf(plane.mi)).to.deep.equal(
      new Map([
        ['be1', 20],
        ['be2', 80],
      ]),
    );
    expect(readFileSync(plane.lb.files.table, 'utf8')).to.include(':80:');
    expect((await pusher.push(desired)).kind).to.equal('in_sync');
    expect((await pusher.push(desired, { force: true })).kind).to.equal('in_sync');
  });

  it('adds a backend: its literal send() is loaded (reload_routes) before the dispatcher can pick it', async function () {
    const desired = planeDestinations([{ weight: 1 }, { weight: 1 }, { weight: 98 }]);
    const out = await pusher.push(desired);
    expect(out.kind, JSON.stringify(out)).to.equal('applied');
    expect(readFileSync(plane.lb.files.destinations, 'utf8')).to.include('send("udp:127.47.0.13:5060"');
    const before = await miStats(plane.mi);
    const r = await runSippClient(h.group, {
      name: 'uac-options',
      scenario: join(SCENARIO_DIR, 'uac-options.xml'),
      localIp: OSIPS_NET.clientIp(1),
      localPort: 5086,
      remote: `${OSIPS_NET.lbIp}:${OSIPS_NET.sipPort}`,
      rate: 100,
      maxCalls: 100,
      timeoutS: 30,
    });
    expect(r.stats.successful, 'OPTIONS answered').to.equal(100);
    const after = await miStats(plane.mi);
    expect((after.sipweigh_dispatched ?? 0) - (before.sipweigh_dispatched ?? 0)).to.be.at.least(100);
    expect(
      (after.sipweigh_send_dynamic ?? 0) - (before.sipweigh_send_dynamic ?? 0),
      'sends through the per-call (leaking) form',
    ).to.equal(0);
  });

  it('sets states over MI (disabled is inactive on OpenSIPS) and back', async function () {
    const drained = planeDestinations([{ weight: 50 }, { weight: 50 }, { weight: 50 }]).map((d, i) =>
      i === 0 ? { ...d, state: 'disabled' as const } : d,
    );
    const out = await pusher.push(drained);
    expect(out.kind, JSON.stringify(out)).to.equal('applied');
    expect((await weightsOf(plane.mi))?.get('be1')).to.equal(0);
    const back = await pusher.push(planeDestinations([{ weight: 50 }, { weight: 50 }, { weight: 50 }]));
    expect(back.kind, JSON.stringify(back)).to.equal('applied');
    expect((await weightsOf(plane.mi))?.get('be1')).to.equal(50);
  });

  it('repairs drift: an operator reload of another table is put back by the next forced push', async function () {
    const desired = planeDestinations([{ weight: 50 }, { weight: 50 }, { weight: 50 }]);
    await plane.mi.call('ds_set_state', { state: 'i', group: '1', address: 'sip:127.47.0.12:5060' });
    const out = await pusher.push(desired, { force: true });
    expect(out.kind, JSON.stringify(out)).to.equal('applied');
    expect((await weightsOf(plane.mi))?.get('be2')).to.equal(50);
  });

  it('a ds_set_state refused after ds_reload puts the last verified table back (weights and states)', async function () {
    let refuse = false;
    const faulty = new OpenSipsDispatcherPusher({
      // The real LB; only ds_set_state is refused while `refuse` is set (an injected RPC failure).
      mi: {
        target: plane.mi.target,
        call: (method, params, deadlineMs) =>
          refuse && method === 'ds_set_state'
            ? Promise.reject(new Error('injected failure'))
            : plane.mi.call(method, params, deadlineMs),
      },
      table: new LocalListFile({ path: plane.lb.files.table }),
      destinations: new LocalListFile({ path: plane.lb.files.destinations }),
    });
    const good = planeDestinations([{ weight: 30 }, { weight: 30 }, { weight: 40 }]);
    const first = await faulty.push(good);
    expect(first.kind, JSON.stringify(first)).to.equal('applied');
    refuse = true;
    const bad = planeDestinations([{ weight: 60 }, { weight: 20 }, { weight: 20 }]).map((d, i) =>
      i === 1 ? { ...d, state: 'disabled' as const } : d,
    );
    const out = await faulty.push(bad);
    expect(out.kind, JSON.stringify(out)).to.equal('failed');
    if (out.kind !== 'failed') return;
    expect(out.stage).to.equal('reload');
    expect(out.reason).to.match(/ds_set_state .*injected failure; rollback: the previous list reloaded/);
    expect(await weightsOf(plane.mi), 'the LB on its last good weights').to.deep.equal(
      new Map([
        ['be1', 30],
        ['be2', 30],
        ['be3', 40],
      ]),
    );
    expect(readFileSync(plane.lb.files.table, 'utf8')).to.not.include('sw_drained');
    refuse = false;
    const again = await faulty.push(bad);
    expect(again.kind, JSON.stringify(again)).to.equal('applied');
    expect((await statesOf(plane.mi))?.get('be2')).to.equal('disabled');
  });

  it('a drain reads back as disabled; after an OpenSIPS restart (every row Active) the next unforced push drains again', async function () {
    const drained = planeDestinations([{ weight: 50 }, { weight: 50 }, { weight: 50 }]).map((d, i) =>
      i === 0 ? { ...d, state: 'disabled' as const } : d,
    );
    const out = await pusher.push(drained);
    expect(out.kind, JSON.stringify(out)).to.equal('applied');
    expect(
      await statesOf(plane.mi),
      'read back by ds_list (what a restarted controller reads)',
    ).to.deep.equal(
      new Map([
        ['be1', 'disabled'],
        ['be2', 'active'],
        ['be3', 'active'],
      ]),
    );
    expect((await pusher.push(drained)).kind).to.equal('in_sync');

    // Restart the LB on the same files (the table the pusher wrote, marks included).
    const tableBefore = readFileSync(plane.lb.files.table, 'utf8');
    await plane.lb.process.stop();
    const restarted = await startOpenSipsLb(h.group, {
      name: plane.lb.name,
      settings: {
        sip: { address: OSIPS_NET.lbIp, port: OSIPS_NET.sipPort },
        mi: { address: OSIPS_NET.lbIp, port: OSIPS_NET.miPort },
      },
      destinations: asOpenSips(drained),
    });
    expect(restarted.files.table).to.equal(plane.lb.files.table);
    expect(readFileSync(plane.lb.files.table, 'utf8'), 'the same table as before the restart').to.equal(
      tableBefore,
    );
    const loaded = await eventually(() => statesOf(plane.mi), 'ds_list after the restart', 10000, 100);
    expect(loaded.get('be1'), 'OpenSIPS loads every row Active (persistent_state 0)').to.equal('active');

    // Not forced: before the fix the cache answered in_sync here until the next reconcile.
    const repaired = await eventually(
      async () => {
        const o = await pusher.push(drained);
        return o.kind === 'applied' ? o : null;
      },
      'an unforced push that notices the restart',
      10000,
      200,
    );
    expect(repaired.changes.map((c) => (c.kind === 'changed' ? c.destination.duid : c.kind))).to.deep.equal([
      'be1',
    ]);
    expect((await statesOf(plane.mi))?.get('be1')).to.equal('disabled');
    expect((await weightsOf(plane.mi))?.get('be1')).to.equal(0);
    expect((await pusher.push(drained)).kind).to.equal('in_sync');
  });
});

describe('OpenSIPS LB: closed loop with `sipweigh controller` (lab --lb opensips)', function () {
  this.timeout(180000);
  let lab: RunningLab | undefined;
  let mi: OpenSipsMiClient | undefined;
  const caps = new Map([
    ['be1', 50],
    ['be2', 200],
  ]);

  before(async function () {
    if (!opensipsAvailable()) this.skip();
    lab = await startLab({
      backends: 2,
      capacities: [...caps.values()],
      controller: true,
      net: 48,
      lb: 'opensips',
      initialWeights: 'equal',
      dir: mkdtempSync(join(tmpdir(), 'sipweigh-osips-loop-')),
    });
    mi = new OpenSipsMiClient({ url: lab.state.lb_rpc_url });
  });
  after(async function () {
    mi?.close();
    await lab?.stop();
  });

  it('the controller moves the LB from equal weights to the 1:4 capacity ratio; calls complete meanwhile', async function () {
    expect(lab!.state.lb_kind).to.equal('opensips');
    const start = await weightsOf(mi!);
    expect(start, 'equal weights at the start').to.deep.equal(
      new Map([
        ['be1', 100],
        ['be2', 100],
      ]),
    );
    const calls = runSippClient(lab!.group, {
      name: 'uac-loop',
      scenario: LAB_SCENARIOS.uac,
      ...labClient(lab!.state.plan),
      rate: 40,
      maxCalls: 800,
      timeoutS: 60,
    });
    const w = await eventually(
      async () => {
        const now = await weightsOf(mi!);
        return now !== null && ratioError(now, caps) <= 0.15 ? now : null;
      },
      'weights within 15 % of 1:4 at the OpenSIPS LB',
      60000,
      250,
    );
    expect(w.get('be2')! / w.get('be1')!).to.be.within(3.4, 4.7);
    const r = await calls;
    expect(r.stats.failed, 'failed calls').to.equal(0);
    const stats = await miStats(mi!);
    expect(stats.sipweigh_send_dynamic, 'sends through the per-call form').to.equal(0);
  });

  it('the controller sets the admission limit in the shared variables of the LB (GCRA emission interval)', async function () {
    const T = await eventually(
      async () => {
        const r = (await mi!.call('shv_get', { name: 'sipweigh_adm_T_1' })) as { VAR?: { value?: unknown } };
        const v = r.VAR?.value;
        return typeof v === 'number' && v > 0 ? v : null;
      },
      'a limit from the controller',
      20000,
      250,
    );
    // A limit of headroom x the pool (250 calls/s nominal): an emission interval of a few ms.
    const limitCps = 1e6 / T;
    expect(limitCps, 'limit, calls/s').to.be.within(100, 300);
  });
});
