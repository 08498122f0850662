/**
 * Self-registration through the daemons (lab on 127.31.x.x): `sipweigh controller` configured with
 * no backends at all, set 1 open to self-registration and set 2 closed, and an LB whose list is
 * empty. The two lab agents announce themselves (signed hello): be1 into set 1, be2 into set 2.
 * Seen from outside: be1 appears in the API (source hello) and in the LB's list with a weight; be2
 * appears in neither, and /metrics counts its hellos as dropped (not_allowed).
 */
import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import { startLabAgent } from '../../src/lab/lab.js';
import { startDaemonLab, type DaemonLab } from '../support/daemon-lab.js';
import { eventually, sleep } from '../support/harness.js';
import { http, sample, waitReady } from './api-support.js';

describe('self-registration through the daemons (real lab on 127.31.x.x)', function () {
  this.timeout(240000);
  let d: DaemonLab | undefined;

  before(async function () {
    d = await startDaemonLab({ backends: 2, net: 31, agents: false });
    const { state } = d.lab;
    // Nobody listed at the LB: whatever the controller learns, it learns from the hellos.
    writeFileSync(state.dispatcher_list, '');
    await d.rpc.call('dispatcher.reload', []);
    const cfg = d.labConfig();
    cfg.sets = [
      { id: 1, self_registration: true, backends: [] },
      { id: 2, self_registration: false, backends: [] },
    ];
    d.startController(cfg);
    await waitReady(d.base);
    // be2's agent says it belongs to set 2, which does not take self-registrations.
    const be2File = state.configs.agents.be2!;
    const be2 = parse(readFileSync(be2File, 'utf8')) as Record<string, unknown>;
    be2.set = 2;
    writeFileSync(be2File, stringify(be2), { mode: 0o600 });
    await Promise.all(
      state.plan.backends.map((be) => startLabAgent(d!.lab.group, be, state.configs.agents[be.id]!)),
    );
  });

  after(async function () {
    await d?.stop();
  });

  it('an agent announcing itself into a set that allows it is registered, probed and scored (API)', async function () {
    const be1 = await eventually(
      async () => {
        const b = await d!.backend('be1');
        return b?.state === 'up' && (b.score?.weight ?? 0) > 0 ? b : null;
      },
      'be1 registered and up in the API',
      60000,
      200,
    );
    expect(be1).to.deep.include({ set: 1, source: 'hello', uri: 'sip:127.31.0.11:5060', capacity_cps: 100 });
  });

  it('the LB lists it, in set 1, with the weight the API says', async function () {
    await eventually(async () => ((await d!.lbWeights())?.get('be1') ?? 0) > 0, 'be1 in the LB list', 30000);
    const t = (await d!.lbTargets()).find((x) => x.duid === 'be1')!;
    expect(t).to.deep.include({ setId: 1, uri: 'sip:127.31.0.11:5060', state: 'active' });
    const api = await d!.backend('be1');
    expect(api!.weights.lb1).to.equal(t.rweight);
  });

  it('an agent announcing itself into a set that does not allow it is refused: not in the API, not at the LB', async function () {
    // Long enough for many of be2's hellos (250 ms doubling) to have been refused.
    await eventually(
      async () =>
        (sample(await d!.metrics(), 'sipweigh_heartbeat_dropped_total', { reason: 'not_allowed' })?.value ??
          0) >= 2,
      'be2’s hellos counted as not allowed',
      30000,
      250,
    );
    expect((await http('GET', `${d!.base}/api/v1/backends/be2`)).status).to.equal(404);
    expect((await d!.backends()).map((b) => b.id)).to.deep.equal(['be1']);
    const ids = (await d!.lbTargets()).map((t) => t.duid);
    expect(ids).to.deep.equal(['be1']);
    await sleep(2000);
    expect((await d!.backends()).map((b) => b.id)).to.deep.equal(['be1']);
    const m = await d!.metrics();
    expect(sample(m, 'sipweigh_backend_state', { backend: 'be2' })).to.equal(undefined);
  });
});
