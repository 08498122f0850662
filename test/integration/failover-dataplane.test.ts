/**
 * Issue 17 at the LB, with real Kamailio 5.6 and sipp and no controller (the tests do its part over
 * JSON-RPC): a call whose INVITE went to a backend killed before it answered completes on another one
 * once the destination is inactive (its retransmission is re-dispatched, its CANCEL and ACK follow);
 * a retransmission to an active slow backend is never re-dispatched, only counted as evidence; the
 * lease's lapse turns the LB's own probing on (a killed backend leaves rotation within 3 s, a drained
 * one stays disabled and unpinged) and its return turns it off.
 * Addresses: 127.40.x.x (see failover-dataplane-lab.ts).
 */
import { expect } from 'chai';
import { join } from 'node:path';
import { LAB_SCENARIOS } from '../../src/lab/scenarios.js';
import { runSippClient, type SippRun } from '../../src/lab/sipp.js';
import { eventually, REPO_ROOT, SCENARIO_DIR, sleep, useProcessGroup } from '../support/harness.js';
import { delta, header, isRequest, sippReceivedMessages, stat } from './dataplane-helpers.js';
import { FAILOVER_NET, startFailoverPlane, type FailoverPlane } from './failover-dataplane-lab.js';

const UAC = join(REPO_ROOT, 'scripts', 'sipp', 'uac.xml');
/** Long enough that the killed backend never answers before it dies. */
const NEVER_ANSWERS_US = 10_000_000;

function invitesAt(uas: SippRun | undefined): string[] {
  return sippReceivedMessages(uas?.messagesFile ?? '')
    .filter(isRequest('INVITE'))
    .map((m) => header(m, 'Call-ID') ?? '');
}

function requestsAt(uas: SippRun | undefined, method: string): number {
  return sippReceivedMessages(uas?.messagesFile ?? '').filter(isRequest(method)).length;
}

/**
 * Starts `calls` calls toward backend 0 (backend 1 starts inactive), waits until the LB dispatched
 * them all, then does what the controller does when backend 0 dies: SIGKILL, backend 0 inactive,
 * backend 1 active. Returns the sipp result.
 */
async function callsIntoAKill(
  h: { readonly group: import('../../src/lab/processes.js').ProcessGroup },
  plane: FailoverPlane,
  scenario: string,
  calls: number,
  name: string,
  outState: 'i' | 'd' = 'i',
) {
  const before = await plane.lbStats();
  const client = runSippClient(h.group, {
    name,
    scenario,
    localIp: FAILOVER_NET.clientIp(1),
    localPort: 5060,
    remote: plane.lbTarget,
    rate: 10,
    maxCalls: calls,
    timeoutS: 45,
  });
  await eventually(
    async () => delta(before, await plane.lbStats(), 'script.sipweigh_dispatched') >= calls,
    'the calls dispatched to backend 0',
    10000,
    50,
  );
  plane.kill(0);
  await plane.setState(0, outState);
  await plane.setState(1, 'a');
  const result = await client;
  return { before, result, after: await plane.lbStats() };
}

/**
 * Two backends: backend 0 in rotation but never answering (the one the test kills), backend 1
 * inactive until the test puts it in, each with a sipp UAS. The test plays the controller, so the
 * LB's own probing (the backstop) is off: it would race the test's state changes.
 */
async function startKillPlane(
  group: Parameters<typeof startFailoverPlane>[0],
  name: string,
): Promise<{ plane: FailoverPlane; uases: SippRun[] }> {
  const plane = await startFailoverPlane(
    group,
    [
      { weight: 50, defines: { SW_PRE_RELAY_DELAY_US: NEVER_ANSWERS_US } },
      { weight: 50, state: 'inactive' },
    ],
    { SW_NO_BACKSTOP: true },
  );
  return { plane, uases: await plane.startUases(name, LAB_SCENARIOS.uas, 100) };
}

describe('failover data plane: a backend killed before it answered', function () {
  this.timeout(120000);
  const h = useProcessGroup('failover-killed');
  let plane: FailoverPlane;
  let uases: SippRun[] = [];

  before(async function () {
    ({ plane, uases } = await startKillPlane(h.group, 'calls'));
  });
  after(() => plane?.rpc.close());

  it('3 calls: each retransmitted INVITE is re-dispatched to the live backend, every call completes there', async function () {
    const calls = 3;
    const { before, result, after } = await callsIntoAKill(h, plane, UAC, calls, 'uac-killed');
    expect(result.stats.successful, 'calls completed').to.equal(calls);
    expect(result.stats.failed).to.equal(0);
    expect(delta(before, after, 'script.sipweigh_redispatched'), 'requests moved').to.equal(calls);
    const ev = await plane.htable('sipweigh_ev');
    expect(ev.get(`redispatch::${plane.backends[0]!.uri}`), 'moved off backend 0').to.equal(calls);
    expect(ev.get(`redispatch::${plane.backends[1]!.uri}`), 'nothing moved off backend 1').to.equal(
      undefined,
    );
    // The moved retransmission itself is evidence against backend 0.
    expect(ev.get(`rtx::${plane.backends[0]!.uri}`) ?? 0, 'retransmissions toward backend 0').to.be.at.least(
      calls,
    );
    const atLive = invitesAt(uases[1]);
    expect(new Set(atLive).size, 'calls at the live backend').to.equal(calls);
    expect(atLive, 'one INVITE per call there (no retransmission forked)').to.have.length(calls);
  });
});

describe('failover data plane: a killed backend written disabled (drained) rather than inactive', function () {
  this.timeout(120000);
  const h = useProcessGroup('failover-killed-disabled');
  let plane: FailoverPlane;
  let uases: SippRun[] = [];

  before(async function () {
    ({ plane, uases } = await startKillPlane(h.group, 'disabled'));
  });
  after(() => plane?.rpc.close());

  it('2 calls: ds_is_active is false for a disabled destination too, the retransmissions move', async function () {
    const calls = 2;
    const { before, result, after } = await callsIntoAKill(h, plane, UAC, calls, 'uac-disabled', 'd');
    expect(result.stats.successful, 'calls completed').to.equal(calls);
    expect(delta(before, after, 'script.sipweigh_redispatched'), 'requests moved').to.equal(calls);
    expect(new Set(invitesAt(uases[1])).size, 'calls at the live backend').to.equal(calls);
  });
});

describe('failover data plane: CANCEL of a call re-dispatched off a killed backend', function () {
  this.timeout(120000);
  const h = useProcessGroup('failover-cancel');
  let plane: FailoverPlane;
  let uases: SippRun[] = [];

  before(async function () {
    plane = await startFailoverPlane(
      h.group,
      [
        { weight: 50, defines: { SW_PRE_RELAY_DELAY_US: NEVER_ANSWERS_US } },
        { weight: 50, state: 'inactive' },
      ],
      { SW_NO_BACKSTOP: true },
    );
    uases = await plane.startUases('cancel', join(SCENARIO_DIR, 'uas-cancel.xml'), 100);
  });
  after(() => plane?.rpc.close());

  it('3 calls: the CANCEL and the ACK of the 487 reach the backend that has the INVITE', async function () {
    const calls = 3;
    const beBefore = await plane.backendStats(1);
    const { before, result, after } = await callsIntoAKill(
      h,
      plane,
      join(SCENARIO_DIR, 'uac-cancel.xml'),
      calls,
      'uac-cancel-killed',
    );
    expect(result.stats.successful, 'calls ended 487 + ACK').to.equal(calls);
    expect(result.stats.failed).to.equal(0);
    expect(delta(before, after, 'script.sipweigh_cancel_481'), '481s from the LB').to.equal(0);
    expect(delta(before, after, 'script.sipweigh_redispatched'), 'INVITEs moved').to.equal(calls);
    const beAfter = await plane.backendStats(1);
    expect(
      delta(beBefore, beAfter, 'core.rcv_requests_cancel'),
      'CANCELs at the live backend',
    ).to.be.at.least(calls);
    expect(requestsAt(uases[1], 'CANCEL'), 'CANCELs at its server').to.equal(calls);
    expect(requestsAt(uases[1], 'ACK'), 'ACKs of the 487 at its server').to.equal(calls);
  });
});

describe('failover data plane: a ringing call on a backend taken out of rotation', function () {
  this.timeout(120000);
  const h = useProcessGroup('failover-drained-cancel');
  let plane: FailoverPlane;
  let uases: SippRun[] = [];

  before(async function () {
    plane = await startFailoverPlane(h.group, [{ weight: 50 }, { weight: 50, state: 'inactive' }], {
      SW_NO_BACKSTOP: true,
    });
    uases = await plane.startUases('drained', join(SCENARIO_DIR, 'uas-cancel.xml'), 100);
  });
  after(() => plane?.rpc.close());

  it('3 calls ringing at backend 0, then drained (disabled) and inactive: every CANCEL still reaches it', async function () {
    const calls = 3;
    const before = await plane.lbStats();
    const client = runSippClient(h.group, {
      name: 'uac-cancel-late',
      scenario: join(SCENARIO_DIR, 'uac-cancel-late.xml'),
      localIp: FAILOVER_NET.clientIp(1),
      localPort: 5060,
      remote: plane.lbTarget,
      rate: 10,
      maxCalls: calls,
      timeoutS: 40,
    });
    await eventually(() => invitesAt(uases[0]).length >= calls, 'the calls ringing at backend 0', 10000, 50);
    // Within the UAC's 2 s between 180 and CANCEL: backend 0 drained, then taken out.
    await plane.setState(0, 'd');
    await plane.setState(1, 'a');
    await sleep(300);
    await plane.setState(0, 'i');
    const result = await client;
    const after = await plane.lbStats();
    expect(result.stats.successful, 'calls ended 487 + ACK').to.equal(calls);
    expect(delta(before, after, 'script.sipweigh_redispatched'), 'nothing moved').to.equal(0);
    expect(requestsAt(uases[0], 'CANCEL'), 'CANCELs at the INVITE server').to.equal(calls);
    expect(requestsAt(uases[1], 'CANCEL'), 'CANCELs elsewhere').to.equal(0);
  });
});

describe('failover data plane: a slow but active backend keeps its calls', function () {
  this.timeout(120000);
  const h = useProcessGroup('failover-slow');
  let plane: FailoverPlane;
  let uases: SippRun[] = [];

  before(async function () {
    // 1.2 s before the backend's transaction (and its 100 Trying) exists: the client retransmits
    // after 0.5 s. Backstop on (no lease): the destinations are "AP", active while probed.
    const slow = { SW_PRE_RELAY_DELAY_US: 1_200_000 };
    plane = await startFailoverPlane(h.group, [
      { weight: 50, defines: slow },
      { weight: 50, defines: slow },
    ]);
    uases = await plane.startUases('slow', LAB_SCENARIOS.uas, 100);
  });
  after(() => plane?.rpc.close());

  it('6 calls: retransmissions are counted per destination, never re-dispatched', async function () {
    const calls = 6;
    const before = await plane.lbStats();
    const result = await runSippClient(h.group, {
      name: 'uac-slow',
      scenario: UAC,
      localIp: FAILOVER_NET.clientIp(1),
      localPort: 5060,
      remote: plane.lbTarget,
      rate: 4,
      maxCalls: calls,
      timeoutS: 40,
    });
    expect(result.stats.successful).to.equal(calls);
    expect(result.stats.retransmissions, 'the client retransmitted').to.be.at.least(calls);
    const after = await plane.lbStats();
    expect(delta(before, after, 'script.sipweigh_redispatched'), 'nothing re-dispatched').to.equal(0);
    const seen = delta(before, after, 'script.sipweigh_rtx_seen');
    expect(seen, 'retransmissions seen').to.be.at.least(calls);
    const ev = await plane.htable('sipweigh_ev');
    const rtx = plane.backends.map((b) => ev.get(`rtx::${b.uri}`) ?? 0);
    expect(rtx[0]! + rtx[1]!, `rtx counters ${rtx.join('/')}`).to.equal(seen);
    expect([...ev.keys()].filter((k) => k.startsWith('redispatch::'))).to.deep.equal([]);
    const all = uases.flatMap(invitesAt);
    expect(all, 'INVITEs at the servers').to.have.length(calls);
    expect(new Set(all).size, 'distinct calls').to.equal(calls);
  });
});

describe('failover data plane: lease, backstop probing and drained destinations', function () {
  this.timeout(120000);
  const h = useProcessGroup('failover-lease');
  let plane: FailoverPlane;
  let refresher: NodeJS.Timeout | undefined;

  const options = async (i: number) => stat(await plane.backendStats(i), 'core.rcv_requests_options');
  const backstop = async () => (await plane.htable('sipweigh_lease')).get('backstop');
  const lbStat = async (name: string) => stat(await plane.lbStats(), `script.${name}`);
  const stopRefreshing = () => {
    if (refresher) clearInterval(refresher);
    refresher = undefined;
  };
  /** The controller's refresh: 1500 ms lease every 250 ms. */
  const startRefreshing = () => {
    stopRefreshing();
    const once = () => void plane.refreshLease(1500).catch(() => undefined);
    once();
    refresher = setInterval(once, 250);
  };

  before(async function () {
    plane = await startFailoverPlane(h.group, [{ weight: 50 }, { weight: 50 }]);
  });
  after(() => {
    stopRefreshing();
    plane?.rpc.close();
  });

  it('an LB that never had a lease probes its backends itself', async function () {
    await eventually(async () => (await backstop()) === 1, 'backstop on', 5000);
    expect(await lbStat('sipweigh_backstop_on')).to.equal(1);
    const before = await options(0);
    await eventually(async () => (await options(0)) >= before + 2, 'OPTIONS at backend 0', 5000);
    const t = await plane.targets();
    expect(t.get(plane.backends[0]!.uri)?.state).to.equal('active');
  });

  it('a refreshed lease turns the probing off: no OPTIONS reach the backends', async function () {
    startRefreshing();
    await eventually(async () => (await backstop()) === 0, 'backstop off', 5000);
    expect(await lbStat('sipweigh_backstop_off')).to.equal(1);
    await sleep(1500); // a ping in flight at the switch
    const before = [await options(0), await options(1)];
    await sleep(3000);
    expect([await options(0), await options(1)], 'OPTIONS over 3 s').to.deep.equal(before);
    expect(await backstop()).to.equal(0);
  });

  it('the lease lapses: probing again, a drained destination stays disabled and unpinged', async function () {
    await plane.setState(0, 'd');
    stopRefreshing();
    await eventually(async () => (await backstop()) === 1, 'backstop on after the lapse', 5000);
    expect(await lbStat('sipweigh_backstop_on')).to.equal(2);
    await sleep(1500);
    const before = [await options(0), await options(1)];
    await sleep(3000);
    const after = [await options(0), await options(1)];
    expect(after[0], 'OPTIONS at the drained backend').to.equal(before[0]);
    expect(after[1]! - before[1]!, 'OPTIONS at the other one').to.be.at.least(2);
    expect((await plane.targets()).get(plane.backends[0]!.uri)?.state, 'drained').to.equal('disabled');
  });

  it('with the backstop on, a killed backend leaves rotation within 3 s', async function () {
    const killedAt = Date.now();
    plane.kill(1);
    const outAt = await eventually(
      async () => {
        const s = (await plane.targets()).get(plane.backends[1]!.uri)?.state;
        return s === 'inactive' ? Date.now() : undefined;
      },
      'backend 1 inactive',
      10000,
      100,
    );
    expect(outAt - killedAt, 'kill -> out of rotation, ms').to.be.at.most(3000);
    expect((await plane.targets()).get(plane.backends[0]!.uri)?.state, 'still drained').to.equal('disabled');
  });

  it('the lease returns: probing off again', async function () {
    startRefreshing();
    await eventually(async () => (await backstop()) === 0, 'backstop off', 5000);
    expect(await lbStat('sipweigh_backstop_off')).to.equal(2);
    stopRefreshing();
  });
});

describe('failover data plane: a lease that lands before the first tick', function () {
  this.timeout(120000);
  const h = useProcessGroup('failover-early-lease');
  let plane: FailoverPlane;
  let refresher: NodeJS.Timeout | undefined;

  const options = async (i: number) => stat(await plane.backendStats(i), 'core.rcv_requests_options');

  before(async function () {
    plane = await startFailoverPlane(h.group, [{ weight: 50 }, { weight: 50 }]);
    // The controller's refresh starts as soon as the LB answers (often before the timer's first tick).
    const once = () => void plane.refreshLease(1500).catch(() => undefined);
    once();
    refresher = setInterval(once, 250);
  });
  after(() => {
    if (refresher) clearInterval(refresher);
    plane?.rpc.close();
  });

  it('probing on, key backstop never written, lease fresh: the backstop is switched off', async function () {
    // The state of a fresh LB whose first lease landed before the first tick, made deterministic:
    // dispatcher's ping_active starts at 1 and the key backstop is unset while the lease is fresh.
    await plane.rpc.call('dispatcher.ping_active', [1]);
    // Not found when no tick has switched anything yet: the very state this test is about.
    await plane.rpc.call('htable.delete', ['sipweigh_lease', 'backstop']).catch(() => undefined);
    await eventually(
      async () => (await plane.htable('sipweigh_lease')).get('backstop') === 0,
      'backstop written off',
      5000,
    );
    await sleep(1500); // a ping in flight at the switch
    const before = [await options(0), await options(1)];
    await sleep(3000);
    expect([await options(0), await options(1)], 'OPTIONS over 3 s').to.deep.equal(before);
    expect(
      stat(await plane.lbStats(), 'script.sipweigh_backstop_off'),
      'no backstop was on: no switch',
    ).to.equal(stat(await plane.lbStats(), 'script.sipweigh_backstop_on'));
  });
});
