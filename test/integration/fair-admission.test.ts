/**
 * Fair share of the admission limit per source and the packet-rate guard, at a real LB
 * (src/lab/kamailio/lb.cfg with SW_ADMISSION, SW_SOURCE_GROUPS_FILE, SW_GUARD) in front of emulated
 * backends, with sipp UACs and raw UDP peers on their own addresses as the sources. The per-source
 * shares (G::<SET>::<key>, Gtau::<SET>) are written over JSON-RPC as the controller writes them,
 * computed here by hand (max-min over the offered rates); the counters off/adm/ref are read back.
 * Addresses: 127.42.x.x (LB 127.42.0.10, backends .11+, clients 127.42.2.x to 127.42.7.x).
 */
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { admissionLimiterName, setLimiter } from '../../src/kamailio/admission.js';
import { runSippClient, type SippResult } from '../../src/lab/sipp.js';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { sleep } from '../support/harness.js';
import { startAdmissionLab, type AdmissionLab } from './admission-lab.js';
import { delta, header, newBranch, sipRequest, UdpSipPeer } from './dataplane-helpers.js';

const NET = 42;
const SET = 1;
const LIMITER = admissionLimiterName(SET);
const UAC = join(PACKAGE_ROOT, 'scripts', 'sipp', 'uac-admission.xml');
const POLITE_IP = `127.${NET}.2.5`;
const FLOOD_IP = `127.${NET}.2.6`;
const RAW_IP = `127.${NET}.2.8`;
/** Sources of the group file's subnet. */
const GROUPED_IP = `127.${NET}.3.5`;
const GUARD_FLOOD_IP = `127.${NET}.4.5`;
const TRUSTED_IP = `127.${NET}.4.7`;
/** Two backends of 50 calls/s: every limit below stays far under the pool's capacity. */
const CAPACITIES = [50, 50];

const intervalUs = (cps: number) => Math.round(1e6 / cps);

/** Every integer entry of an htable (htable.dump), by key. */
async function dumpInts(lab: AdmissionLab, table: string): Promise<Map<string, number>> {
  const result = (await lab.rpc.call('htable.dump', [table])) as unknown;
  if (!Array.isArray(result)) throw new Error(`htable.dump ${table}: not an array`);
  const out = new Map<string, number>();
  for (const bucket of result as { slot?: { name: string; value: unknown }[] }[]) {
    for (const item of bucket.slot ?? []) if (typeof item.value === 'number') out.set(item.name, item.value);
  }
  return out;
}

interface Counters {
  readonly off: number;
  readonly adm: number;
  readonly ref: number;
}

async function countersOf(lab: AdmissionLab, key: string): Promise<Counters> {
  const d = await dumpInts(lab, 'sipweigh_src');
  return {
    off: d.get(`off::${SET}::${key}`) ?? 0,
    adm: d.get(`adm::${SET}::${key}`) ?? 0,
    ref: d.get(`ref::${SET}::${key}`) ?? 0,
  };
}

const minus = (a: Counters, b: Counters): Counters => ({
  off: a.off - b.off,
  adm: a.adm - b.adm,
  ref: a.ref - b.ref,
});

const seti = (lab: AdmissionLab, key: string, value: number) =>
  lab.rpc.call('htable.seti', ['sipweigh_src', key, value]);

/** Removes every share and schedule (G, Gtau, Gtat, tat_<SET>): the next test starts afresh. */
async function clearShares(lab: AdmissionLab): Promise<void> {
  for (const key of (await dumpInts(lab, 'sipweigh_src')).keys()) {
    if (/^(G|Gtau|Gtat)::/.test(key)) await lab.rpc.call('htable.delete', ['sipweigh_src', key]);
  }
  if ((await dumpInts(lab, 'sipweigh_adm')).has(`tat_${SET}`)) {
    await lab.rpc.call('htable.delete', ['sipweigh_adm', `tat_${SET}`]);
  }
}

interface SourceRun {
  readonly result: SippResult;
  readonly answered: number;
  readonly refused: number;
}

let sippRun = 0;

async function offerFrom(
  lab: AdmissionLab,
  localIp: string,
  rate: number,
  calls: number,
): Promise<SourceRun> {
  const result = await runSippClient(lab.group, {
    name: `fair-uac-${++sippRun}`,
    scenario: UAC,
    localIp,
    localPort: 5060,
    remote: `${lab.lb.address}:${lab.lb.port}`,
    rate,
    maxCalls: calls,
    timeoutS: Math.ceil(calls / rate) + 40,
    traceCounts: true,
  });
  return {
    result,
    answered: result.counts['4_200_Recv'] ?? 0,
    refused: result.counts['3_503_Recv'] ?? 0,
  };
}

describe('integration: fair share of the admission limit per source (real LB, sipp sources)', function () {
  this.timeout(240000);
  let lab: AdmissionLab | undefined;
  let groupsFile = '';
  const theLab = (): AdmissionLab => {
    if (!lab) throw new Error('lab not started');
    return lab;
  };

  before(async function () {
    const dir = mkdtempSync(join(tmpdir(), 'sipweigh-fair-groups-'));
    groupsFile = join(dir, 'sources.list');
    writeFileSync(groupsFile, `# group address mask port tag\n3 127.${NET}.3.0 24\n`);
    lab = await startAdmissionLab({
      capacities: CAPACITIES,
      label: 'fair',
      net: NET,
      lbDefines: { SW_SOURCE_GROUPS_FILE: `"${groupsFile}"` },
    });
  });
  after(async function () {
    this.timeout(30000);
    await lab?.stop();
  });
  afterEach(async function () {
    if (!lab) return;
    await setLimiter(lab.rpc, LIMITER, null);
    await clearShares(lab);
  });

  it('two sources, one flooding at ~4x the limit: every call of the polite one succeeds, the flood gets the rest', async function () {
    // Limit 40/s. Offered: polite 10/s, flood 150/s. Max-min shares: polite 10, flood 30.
    const limit = 40;
    await setLimiter(theLab().rpc, LIMITER, limit);
    await seti(theLab(), `Gtau::${SET}`, 500_000);
    await seti(theLab(), `G::${SET}::${POLITE_IP}`, intervalUs(10));
    await seti(theLab(), `G::${SET}::${FLOOD_IP}`, intervalUs(30));
    await seti(theLab(), `G::${SET}::*`, intervalUs(2));
    const before = {
      polite: await countersOf(theLab(), POLITE_IP),
      flood: await countersOf(theLab(), FLOOD_IP),
    };
    const statsBefore = await theLab().stats();
    const seconds = 10;
    const started = Date.now();
    const [polite, flood] = await Promise.all([
      offerFrom(theLab(), POLITE_IP, 10, 10 * seconds),
      offerFrom(theLab(), FLOOD_IP, 150, 150 * seconds),
    ]);
    const elapsedS = (Date.now() - started) / 1000;
    const statsAfter = await theLab().stats();
    const p = minus(await countersOf(theLab(), POLITE_IP), before.polite);
    const f = minus(await countersOf(theLab(), FLOOD_IP), before.flood);
    console.log(
      `      fair share under a flood: ${JSON.stringify({
        limit_cps: limit,
        polite: { offered: 100, answered: polite.answered, refused_503: polite.refused, lb: p },
        flood: { offered: 150 * seconds, answered: flood.answered, refused_503: flood.refused, lb: f },
      })}`,
    );
    expect(polite.refused, 'polite source refused').to.equal(0);
    expect(polite.answered).to.equal(100);
    expect(polite.result.stats.failed).to.equal(0);
    expect(p).to.deep.equal({ off: 100, adm: 100, ref: 0 });
    // The flood is offered over at least `seconds`: the limit's rest (30/s) plus tolerances, never more.
    expect(flood.refused, 'the flood was refused in part').to.be.greaterThan(0);
    expect(f.off).to.equal(150 * seconds);
    expect(f.adm).to.equal(flood.answered);
    expect(f.ref).to.equal(flood.refused);
    expect(f.adm + f.ref).to.equal(f.off);
    // Together never more than the limit over the run (the runs end after their last call) plus the
    // set's tolerance (10 calls) and the shares' (5 + 15 calls); the flood gets most of the rest.
    expect(p.adm + f.adm, 'admitted in all').to.be.at.most(limit * elapsedS + 30);
    expect(f.adm, 'flood admitted').to.be.at.least((limit - 10) * seconds * 0.8);
    expect(delta(statsBefore, statsAfter, 'script.sipweigh_admission_503')).to.equal(f.ref);
    expect(delta(statsBefore, statsAfter, 'script.sipweigh_admitted')).to.equal(p.adm + f.adm);
  });

  it('one source alone gets the whole limit, not only its share (work-conserving)', async function () {
    // Its share is 10/s (the controller last saw others); alone it is offered 100/s against 40/s.
    const limit = 40;
    const seconds = 10;
    await setLimiter(theLab().rpc, LIMITER, limit);
    await seti(theLab(), `Gtau::${SET}`, 500_000);
    await seti(theLab(), `G::${SET}::${FLOOD_IP}`, intervalUs(10));
    await seti(theLab(), `G::${SET}::*`, intervalUs(2));
    const before = await countersOf(theLab(), FLOOD_IP);
    const run = await offerFrom(theLab(), FLOOD_IP, 100, 100 * seconds);
    const c = minus(await countersOf(theLab(), FLOOD_IP), before);
    const rate = c.adm / seconds;
    console.log(
      `      one source alone: ${JSON.stringify({ limit_cps: limit, share_cps: 10, admitted_cps: rate, lb: c })}`,
    );
    expect(c.off).to.equal(100 * seconds);
    expect(c.adm).to.equal(run.answered);
    expect(c.ref).to.equal(run.refused);
    // Its share alone would be ~10/s (plus a 5-call tolerance): far under 0.85 of the limit.
    expect(rate, 'admitted calls/s').to.be.within(0.85 * limit, 1.2 * limit);
  });

  describe('one INVITE at a time (raw UDP peers)', function () {
    const peers: UdpSipPeer[] = [];
    after(function () {
      for (const p of peers) p.close();
    });
    const bind = async (ip: string) => {
      const peer = await UdpSipPeer.bind(ip);
      peers.push(peer);
      return peer;
    };
    const ruri = () => `sip:fair@${theLab().lb.address}:${theLab().lb.port}`;
    const inviteFrom = (peer: UdpSipPeer, callId: string, branch = newBranch()) =>
      sipRequest({ method: 'INVITE', ruri: ruri(), callId, branch, via: `${peer.address}:${peer.port}` });
    const finalReply = (peer: UdpSipPeer, callId: string) =>
      peer.waitFor(
        (m) => (m.status === 200 || m.status === 503) && header(m.text, 'Call-ID') === callId,
        5000,
      );

    it('a retransmitted INVITE of an admitted call is never refused nor counted again, while new calls are', async function () {
      // 1 call/s with tau = 1 s: two calls at once pass, the third is refused. The source has no
      // guaranteed share (G < 0): the set's limiter alone decides.
      const peer = await bind(RAW_IP);
      await setLimiter(theLab().rpc, LIMITER, 1);
      await seti(theLab(), `G::${SET}::${RAW_IP}`, -1);
      await seti(theLab(), `G::${SET}::*`, intervalUs(100));
      const before = await countersOf(theLab(), RAW_IP);
      const statsBefore = await theLab().stats();
      const stamp = Date.now();
      const ids = ['a', 'b', 'c'].map((x) => `fair-rtx-${x}-${stamp}@test`);
      const first = inviteFrom(peer, ids[0] ?? '');
      await peer.send(first, theLab().lb.address, theLab().lb.port);
      expect((await finalReply(peer, ids[0] ?? ''))?.status).to.equal(200);
      await peer.send(inviteFrom(peer, ids[1] ?? ''), theLab().lb.address, theLab().lb.port);
      expect((await finalReply(peer, ids[1] ?? ''))?.status).to.equal(200);
      await peer.send(inviteFrom(peer, ids[2] ?? ''), theLab().lb.address, theLab().lb.port);
      expect((await finalReply(peer, ids[2] ?? ''))?.status, 'a new call over the limit').to.equal(503);
      // The limiter is closed now: the admitted INVITE's retransmissions still go through.
      for (let i = 0; i < 3; i++) {
        await peer.send(first, theLab().lb.address, theLab().lb.port);
        await sleep(100);
      }
      await peer.waitFor(
        () => peer.messages((m) => m.status === 200 && header(m.text, 'Call-ID') === ids[0]).length >= 2,
        5000,
      );
      expect(peer.messages((m) => m.status === 503 && header(m.text, 'Call-ID') === ids[0])).to.have.length(
        0,
      );
      const c = minus(await countersOf(theLab(), RAW_IP), before);
      expect(c).to.deep.equal({ off: 3, adm: 2, ref: 1 });
      const statsAfter = await theLab().stats();
      expect(delta(statsBefore, statsAfter, 'script.sipweigh_sticky')).to.equal(3);
      expect(delta(statsBefore, statsAfter, 'script.sipweigh_admitted')).to.equal(2);
    });

    it('many new sources (one INVITE each, 300 addresses) share ONE other-bucket limiter: the set limit holds', async function () {
      // Limit 5/s (tolerance 1 s), other bucket 2/s. A limiter per new key would admit every first call.
      const limit = 5;
      const sources = 300;
      await setLimiter(theLab().rpc, LIMITER, limit);
      await seti(theLab(), `Gtau::${SET}`, 250_000);
      await seti(theLab(), `G::${SET}::*`, intervalUs(2));
      const spread = await Promise.all(
        Array.from({ length: sources }, (_, i) => bind(`127.${NET}.${5 + (i >> 7)}.${1 + (i & 127)}`)),
      );
      const statsBefore = await theLab().stats();
      const stamp = Date.now();
      const callIds = spread.map((_, i) => `fair-many-${i}-${stamp}@test`);
      const started = Date.now();
      // 20 INVITEs every 100 ms: all sent within ~1.5 s.
      for (let i = 0; i < sources; i++) {
        const peer = spread[i];
        if (!peer) continue;
        await peer.send(inviteFrom(peer, callIds[i] ?? ''), theLab().lb.address, theLab().lb.port);
        if (i % 20 === 19) await sleep(100);
      }
      const elapsedS = (Date.now() - started) / 1000;
      const finals = await Promise.all(spread.map((peer, i) => finalReply(peer, callIds[i] ?? '')));
      const answered = finals.filter((m) => m?.status === 200).length;
      const refused = finals.filter((m) => m?.status === 503).length;
      const statsAfter = await theLab().stats();
      const table = await dumpInts(theLab(), 'sipweigh_src');
      console.log(
        `      many new sources: ${JSON.stringify({ limit_cps: limit, sources, elapsed_s: elapsedS, answered, refused })}`,
      );
      expect(answered + refused, 'every INVITE answered').to.equal(sources);
      expect(delta(statsBefore, statsAfter, 'script.sipweigh_admitted')).to.equal(answered);
      // The set's limit over the sending time, its tolerance (5 calls) and room, the bucket's 2/s and burst.
      expect(answered, 'admitted in all').to.be.at.most(limit * elapsedS + 2 * elapsedS + 15);
      expect(table.has(`Gtat::${SET}::*`), "the bucket's one schedule").to.equal(true);
      expect([...table.keys()].filter((k) => k.startsWith(`Gtat::${SET}::127.${NET}.5.`))).to.deep.equal([]);
      expect(table.get(`off::${SET}::127.${NET}.5.1`), 'still counted per source').to.equal(1);
    });

    it('keys a grouped source as g<N>, and follows the groups file after permissions.addressReload', async function () {
      const peer = await bind(GROUPED_IP);
      const before = { g3: await countersOf(theLab(), 'g3'), g4: await countersOf(theLab(), 'g4') };
      const callId = (x: string) => `fair-group-${x}-${Date.now()}@test`;
      const id1 = callId('1');
      await peer.send(inviteFrom(peer, id1), theLab().lb.address, theLab().lb.port);
      expect((await finalReply(peer, id1))?.status).to.equal(200);
      expect(minus(await countersOf(theLab(), 'g3'), before.g3)).to.deep.equal({ off: 1, adm: 1, ref: 0 });
      expect((await countersOf(theLab(), GROUPED_IP)).off, 'not keyed by its IP').to.equal(0);

      writeFileSync(groupsFile, `4 127.${NET}.3.0 24\n`);
      await theLab().rpc.call('permissions.addressReload');
      const id2 = callId('2');
      await peer.send(inviteFrom(peer, id2), theLab().lb.address, theLab().lb.port);
      expect((await finalReply(peer, id2))?.status).to.equal(200);
      expect(minus(await countersOf(theLab(), 'g4'), before.g4)).to.deep.equal({ off: 1, adm: 1, ref: 0 });
      expect(minus(await countersOf(theLab(), 'g3'), before.g3).off).to.equal(1);
    });
  });
});

describe('integration: packet-rate guard at the LB (pike, SW_GUARD)', function () {
  this.timeout(120000);
  /** 20 requests per 2 s: pike blocks a source somewhere between 20 and 60 requests in a unit. */
  const DENSITY = 20;
  const UNIT_S = 2;
  let lab: AdmissionLab | undefined;
  const peers: UdpSipPeer[] = [];
  const theLab = (): AdmissionLab => {
    if (!lab) throw new Error('lab not started');
    return lab;
  };

  before(async function () {
    const dir = mkdtempSync(join(tmpdir(), 'sipweigh-guard-groups-'));
    const groupsFile = join(dir, 'sources.list');
    writeFileSync(groupsFile, `# a trusted trunk, in its own group\n6 ${TRUSTED_IP} 32 0 trusted\n`);
    lab = await startAdmissionLab({
      capacities: CAPACITIES,
      label: 'guard',
      net: NET,
      lbDefines: {
        SW_SOURCE_GROUPS_FILE: `"${groupsFile}"`,
        SW_GUARD: true,
        SW_GUARD_DENSITY: DENSITY,
        SW_GUARD_UNIT: UNIT_S,
      },
    });
  });
  after(async function () {
    this.timeout(30000);
    for (const p of peers) p.close();
    await lab?.stop();
  });

  const bind = async (ip: string) => {
    const peer = await UdpSipPeer.bind(ip);
    peers.push(peer);
    return peer;
  };
  const options = (peer: UdpSipPeer, callId: string) =>
    sipRequest({
      method: 'OPTIONS',
      ruri: `sip:${theLab().lb.address}:${theLab().lb.port}`,
      callId,
      via: `${peer.address}:${peer.port}`,
    });

  /** `count` OPTIONS to the LB within about a second (5 every 20 ms); the 200s it answered. */
  async function flood(peer: UdpSipPeer, label: string, count: number): Promise<number> {
    const prefix = `guard-${label}-${Date.now()}-`;
    for (let i = 0; i < count; i++) {
      await peer.send(options(peer, `${prefix}${i}@test`), theLab().lb.address, theLab().lb.port);
      if (i % 5 === 4) await sleep(20);
    }
    const answered = () =>
      peer.messages((m) => m.status === 200 && (header(m.text, 'Call-ID') ?? '').startsWith(prefix)).length;
    // Replies to what passed come within milliseconds; wait until none has come for 500 ms (bounded).
    let last = -1;
    for (let i = 0; i < 20 && answered() !== last; i++) {
      last = answered();
      await sleep(500);
    }
    return answered();
  }

  it('drops a flood from one source silently and counts it; the source is blocked for a while, then served again', async function () {
    const peer = await bind(GUARD_FLOOD_IP);
    const before = await theLab().stats();
    const sent = 300;
    const answered = await flood(peer, 'flood', sent);
    const after = await theLab().stats();
    const dropped = delta(before, after, 'script.sipweigh_guard_drop');
    console.log(
      `      guard: ${JSON.stringify({ density: DENSITY, unit_s: UNIT_S, sent, answered, dropped })}`,
    );
    expect(answered, 'requests answered before the block').to.be.within(DENSITY, 3 * DENSITY * 2);
    expect(dropped, 'every request not answered was dropped by the guard').to.equal(sent - answered);
    expect(peer.messages((m) => m.status !== undefined && m.status !== 200)).to.have.length(0);

    // Still blocked right after the flood: a single request is dropped too.
    const blocked = `guard-blocked-${Date.now()}@test`;
    await peer.send(options(peer, blocked), theLab().lb.address, theLab().lb.port);
    expect(await peer.waitFor((m) => header(m.text, 'Call-ID') === blocked, 1000)).to.equal(undefined);
    // Quiet for a few sampling units: pike unblocks it.
    await sleep(3 * UNIT_S * 1000 + 500);
    const again = `guard-again-${Date.now()}@test`;
    await peer.send(options(peer, again), theLab().lb.address, theLab().lb.port);
    expect((await peer.waitFor((m) => header(m.text, 'Call-ID') === again, 3000))?.status).to.equal(200);
  });

  it('never drops a trusted source (tag in the groups file) nor a backend', async function () {
    const trusted = await bind(TRUSTED_IP);
    const backend = await bind(theLab().plan.backends[0]?.sip.address ?? '');
    const before = await theLab().stats();
    const sent = 300;
    expect(await flood(trusted, 'trusted', sent)).to.equal(sent);
    expect(await flood(backend, 'backend', sent)).to.equal(sent);
    expect(delta(before, await theLab().stats(), 'script.sipweigh_guard_drop')).to.equal(0);
  });
});
