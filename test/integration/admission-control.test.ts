/**
 * Admission control at a real LB (kamailio/lb.cfg with SW_ADMISSION) in front of backends of emulated
 * capacity, with sipp as the load: the pipe fails open, limits set over JSON-RPC take effect, refused
 * INVITEs get a stateless 503 with Retry-After, retransmissions are neither counted twice nor refused,
 * and at 130 % of the pool's capacity the admitted calls succeed while the pool carries >= 90 %.
 * Addresses: 127.8.x.x (admission block). Set SIPWEIGH_MEASURE_COLLAPSE=1 to also run the same
 * overload without admission control and log the collapse (a measured figure, no rate assertion).
 */
import { expect } from 'chai';
import { LAB_SCENARIOS } from '../../src/lab/lab.js';
import {
  admissionPipeName,
  readPipeLimits,
  setPipeLimit,
  type LimitCps,
} from '../../src/kamailio/admission.js';
import { runSippClient, type SippResult } from '../../src/lab/sipp.js';
import { PACKAGE_ROOT } from '../../src/util/package-root.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  delta,
  header,
  newBranch,
  sipRequest,
  tcpSipRequest,
  UdpSipPeer,
  type Stats,
} from './dataplane-helpers.js';
import { eventually, sleep } from '../support/harness.js';
import { CLIENT_IP, startAdmissionLab, type AdmissionLab } from './admission-lab.js';

const UAC = join(PACKAGE_ROOT, 'scripts', 'sipp', 'uac-admission.xml');
const PIPE = admissionPipeName(1);
/** lb.cfg's default SW_ADMISSION_RETRY_AFTER. */
const RETRY_AFTER = '2';

/**
 * Two backends of 50 calls/s nominal (4 workers x 80 ms); the emulation carries 97-98 % of that.
 * Modest rates keep sipp, the LB and the backends' CPU needs small on a shared 2-core machine: the
 * emulated capacity holds only while the non-sleeping part of each call gets its CPU.
 */
const NOMINAL = [50, 50];
const POOL_CPS = 0.975 * NOMINAL.reduce((a, b) => a + b, 0);

interface Outcome {
  readonly result: SippResult;
  /** Seconds sipp took to create all its calls (its 1 s statistics rows; 0 if never). */
  readonly sendingS: number;
  readonly answered: number;
  readonly refused: number;
  readonly lb: { readonly admitted: number; readonly refused: number; readonly open: number };
  readonly elapsedS: number;
}

let sippRun = 0;

/**
 * Seconds from sipp's start to the first statistics row (written every second) in which every call
 * had been created: on a busy machine sipp may need longer than calls/rate to offer them.
 */
function sendingSeconds(statsFile: string, calls: number): number {
  const [head, ...rows] = readFileSync(statsFile, 'utf8').trim().split('\n');
  const cols = head?.split(';') ?? [];
  const created = cols.indexOf('TotalCallCreated');
  const elapsed = cols.indexOf('ElapsedTime(C)');
  for (const row of rows) {
    const cells = row.split(';');
    if (Number(cells[created]) >= calls) {
      const [h = 0, m = 0, sec = 0] = (cells[elapsed] ?? '').split(':').map(Number);
      return h * 3600 + m * 60 + sec;
    }
  }
  return 0;
}

async function offer(lab: AdmissionLab, rate: number, calls: number, extraTimeoutS = 30): Promise<Outcome> {
  const before = await lab.stats();
  const started = Date.now();
  const name = `uac-${++sippRun}`;
  const result = await runSippClient(lab.group, {
    name,
    scenario: UAC,
    localIp: CLIENT_IP,
    localPort: 5060,
    remote: `${lab.lb.address}:${lab.lb.port}`,
    rate,
    maxCalls: calls,
    timeoutS: Math.ceil(calls / rate) + extraTimeoutS,
    traceCounts: true,
  });
  const elapsedS = (Date.now() - started) / 1000;
  const after: Stats = await lab.stats();
  return {
    result,
    sendingS: sendingSeconds(join(lab.group.runDir, `${name}_stats.csv`), calls),
    answered: result.counts['4_200_Recv'] ?? 0,
    refused: result.counts['3_503_Recv'] ?? 0,
    lb: {
      admitted: delta(before, after, 'script.sipweigh_admitted'),
      refused: delta(before, after, 'script.sipweigh_admission_503'),
      open: delta(before, after, 'script.sipweigh_admission_open'),
    },
    elapsedS,
  };
}

async function limitOf(lab: AdmissionLab): Promise<LimitCps | undefined> {
  return (await readPipeLimits(lab.rpc)).get(PIPE)?.limitCps;
}

describe('integration: admission control at the LB (pipelimit)', function () {
  this.timeout(240000);
  let lab: AdmissionLab | undefined;
  const theLab = (): AdmissionLab => {
    if (!lab) throw new Error('lab not started');
    return lab;
  };

  before(async function () {
    lab = await startAdmissionLab({ capacities: NOMINAL, label: 'control' });
  });
  after(async function () {
    this.timeout(30000);
    await lab?.stop();
  });

  it('starts with the set pipe and no limit: every call is admitted (fails open)', async function () {
    const pipe = (await readPipeLimits(theLab().rpc)).get(PIPE);
    expect(pipe, 'pipe created at start-up').to.not.equal(undefined);
    expect(pipe?.algorithm).to.equal('TAILDROP');
    expect(pipe?.limitCps).to.equal(null);

    const o = await offer(theLab(), 50, 100);
    expect(o.result.stats.failed).to.equal(0);
    expect(o.answered).to.equal(100);
    expect(o.refused).to.equal(0);
    expect(o.lb).to.deep.equal({ admitted: 100, refused: 0, open: 0 });
  });

  it('a limit set over JSON-RPC takes effect at once, survives dispatcher.reload; lifting it admits every call again', async function () {
    await setPipeLimit(theLab().rpc, PIPE, 10);
    expect(await limitOf(theLab())).to.equal(10);
    // The controller's weight pushes reload the dispatcher: the limit lives in pipelimit, untouched.
    await theLab().rpc.call('dispatcher.reload');
    expect(await limitOf(theLab())).to.equal(10);
    // 120 calls at 40/s: 3 s of offered load, so 3-4 one-second windows of 10 admitted calls.
    const limited = await offer(theLab(), 40, 120);
    expect(limited.result.stats.failed, 'a 503 without Retry-After fails the call').to.equal(0);
    expect(limited.answered + limited.refused).to.equal(120);
    expect(limited.answered).to.be.within(10, 50);
    expect(limited.refused).to.be.at.least(70);
    expect(limited.lb.admitted).to.equal(limited.answered);
    expect(limited.lb.refused).to.equal(limited.refused);

    await setPipeLimit(theLab().rpc, PIPE, null);
    expect(await limitOf(theLab())).to.equal(null);
    const open = await offer(theLab(), 40, 80);
    expect(open.answered).to.equal(80);
    expect(open.refused).to.equal(0);
  });

  describe('one INVITE at a time (raw UDP and TCP clients)', function () {
    let peer: UdpSipPeer | undefined;
    const thePeer = (): UdpSipPeer => {
      if (!peer) throw new Error('peer not bound');
      return peer;
    };
    before(async function () {
      peer = await UdpSipPeer.bind(CLIENT_IP);
    });
    after(function () {
      peer?.close();
    });

    const ruri = () => `sip:admission@${theLab().lb.address}:${theLab().lb.port}`;
    const via = () => `${CLIENT_IP}:${thePeer().port}`;
    const toLb = (text: string) => thePeer().send(text, theLab().lb.address, theLab().lb.port);
    const repliesTo = (callId: string, status: number) =>
      thePeer().messages((m) => m.status === status && header(m.text, 'Call-ID') === callId);

    it('refuses over the limit with 503 + Retry-After, statelessly; its retransmission, ACK and CANCEL are answered without counting', async function () {
      await setPipeLimit(theLab().rpc, PIPE, 0);
      const before = await theLab().stats();
      const callId = `adm-refused-${Date.now()}@test`;
      const branch = newBranch();
      const invite = sipRequest({ method: 'INVITE', ruri: ruri(), callId, branch, via: via() });
      await toLb(invite);
      const first = await thePeer().waitFor((m) => m.status === 503 && header(m.text, 'Call-ID') === callId);
      expect(first, '503 from the LB').to.not.equal(undefined);
      expect(first?.address).to.equal(theLab().lb.address);
      expect(header(first?.text ?? '', 'Retry-After')).to.equal(RETRY_AFTER);
      const toTag = /;tag=([^;\s]+)/.exec(header(first?.text ?? '', 'To') ?? '')?.[1];
      expect(toTag, 'the 503 has a To-tag').to.be.a('string');

      // A retransmission (same branch, same CSeq): the same 503 again, not counted again.
      await toLb(invite);
      expect(await thePeer().waitFor(() => repliesTo(callId, 503).length === 2), 'second 503').to.not.equal(
        undefined,
      );
      expect(header(repliesTo(callId, 503)[1]?.text ?? '', 'To')).to.equal(header(first?.text ?? '', 'To'));

      // Its ACK is absorbed at the LB; its CANCEL gets 200 (the refused transaction exists).
      await toLb(sipRequest({ method: 'ACK', ruri: ruri(), callId, branch, via: via(), toTag }));
      await toLb(sipRequest({ method: 'CANCEL', ruri: ruri(), callId, branch, via: via() }));
      expect(
        await thePeer().waitFor((m) => m.status === 200 && /CANCEL/.test(header(m.text, 'CSeq') ?? '')),
      ).to.not.equal(undefined);
      const after = await theLab().stats();
      expect(delta(before, after, 'script.sipweigh_admission_503')).to.equal(1);
      expect(delta(before, after, 'script.sipweigh_admitted')).to.equal(0);
      expect(delta(before, after, 'script.sipweigh_dispatched')).to.equal(0);
      expect(delta(before, after, 'script.sipweigh_stray_ack')).to.equal(0);
      expect(repliesTo(callId, 503)).to.have.length(2);

      // A retry after Retry-After (same Call-ID, new CSeq and branch) is a new attempt: admitted now.
      await setPipeLimit(theLab().rpc, PIPE, null);
      await toLb(sipRequest({ method: 'INVITE', ruri: ruri(), callId, cseq: 2, via: via() }));
      const answered = await thePeer().waitFor(
        (m) =>
          m.status === 200 &&
          header(m.text, 'Call-ID') === callId &&
          /INVITE/.test(header(m.text, 'CSeq') ?? ''),
        5000,
      );
      expect(answered, '200 for the retry').to.not.equal(undefined);
      expect(delta(after, await theLab().stats(), 'script.sipweigh_admitted')).to.equal(1);
    });

    it('counts an admitted INVITE once: its retransmissions go to the same backend, never through the pipe', async function () {
      await setPipeLimit(theLab().rpc, PIPE, 1);
      // Start in a window no other INVITE has used, so that the first one is admitted.
      await eventually(async () => {
        const pipe = (await readPipeLimits(theLab().rpc)).get(PIPE);
        return pipe?.limitCps === 1 && pipe.counter === 0;
      }, 'an empty one-second window');
      const before = await theLab().stats();
      const callId = `adm-retrans-${Date.now()}@test`;
      const invite = sipRequest({ method: 'INVITE', ruri: ruri(), callId, via: via() });
      // Spaced like retransmissions (a client's come 500 ms apart; 100 ms keeps the test short). Copies
      // sent back to back race between LB workers (see the cfg), which is not what this is about.
      for (let i = 0; i < 4; i++) {
        await toLb(invite);
        await sleep(100);
      }
      await thePeer().waitFor((m) => m.status === 200 && header(m.text, 'Call-ID') === callId, 5000);
      const after = await theLab().stats();
      expect(delta(before, after, 'script.sipweigh_admitted')).to.equal(1);
      expect(delta(before, after, 'script.sipweigh_admission_503')).to.equal(0);
      expect(delta(before, after, 'script.sipweigh_sticky')).to.equal(3);
      expect(repliesTo(callId, 503)).to.have.length(0);
      expect(repliesTo(callId, 200).length).to.be.at.least(1);
      await setPipeLimit(theLab().rpc, PIPE, null);
    });
    it('refuses a TCP client over the limit too (stateful path), with Retry-After', async function () {
      await setPipeLimit(theLab().rpc, PIPE, 0);
      const before = await theLab().stats();
      const invite = (callId: string) => (tcpVia: string) =>
        sipRequest({ method: 'INVITE', ruri: ruri(), callId, via: tcpVia, transport: 'TCP' });
      const refused = await tcpSipRequest(
        CLIENT_IP,
        theLab().lb,
        invite(`adm-tcp-refused-${Date.now()}@test`),
      );
      expect(refused, 'a final reply over the connection').to.match(/^SIP\/2\.0 503 /);
      expect(header(refused ?? '', 'Retry-After')).to.equal(RETRY_AFTER);
      const middle = await theLab().stats();
      expect(delta(before, middle, 'script.sipweigh_admission_503')).to.equal(1);
      expect(delta(before, middle, 'script.sipweigh_stateful')).to.equal(0);

      await setPipeLimit(theLab().rpc, PIPE, null);
      const admitted = await tcpSipRequest(
        CLIENT_IP,
        theLab().lb,
        invite(`adm-tcp-admitted-${Date.now()}@test`),
        5000,
      );
      expect(admitted).to.match(/^SIP\/2\.0 200 /);
      const after = await theLab().stats();
      expect(delta(middle, after, 'script.sipweigh_admitted')).to.equal(1);
      expect(delta(middle, after, 'script.sipweigh_stateful')).to.equal(1);
    });
  });

  describe('overload', function () {
    it('at 130 % of the pool capacity with the limit at 95 %: admitted calls succeed, the rest get 503, the pool carries >= 90 %', async function () {
      const seconds = 15;
      const rate = Math.round(1.3 * POOL_CPS);
      const limit = Math.floor(0.95 * POOL_CPS);
      await setPipeLimit(theLab().rpc, PIPE, limit);
      const o = await offer(theLab(), rate, rate * seconds, 60);
      // Refused calls end successfully in the scenario (503 with Retry-After, ACK): every call sipp
      // counts as unsuccessful (failed, or still unfinished when it stopped) was an admitted one.
      const failedAmongAdmitted = o.result.stats.created - o.result.stats.successful;
      // Over the time the load was actually offered: never shorter than planned, longer if sipp lagged.
      const offeredS = Math.max(seconds, o.sendingS);
      const carriedCps = o.answered / offeredS;
      console.log(
        `      admission at 130 %: ${JSON.stringify({
          pool_cps: POOL_CPS,
          offered_cps: rate,
          limit_cps: limit,
          calls: o.result.stats.created,
          answered: o.answered,
          refused_503: o.refused,
          admitted_at_lb: o.lb.admitted,
          failed_among_admitted: failedAmongAdmitted,
          offered_s: offeredS,
          carried_cps: Math.round(carriedCps * 10) / 10,
          sipp_failed: o.result.stats.failed,
          retransmissions: o.result.stats.retransmissions,
          mean_setup: o.result.stats.raw['ResponseTime1(C)'],
          elapsed_s: o.elapsedS,
        })}`,
      );
      await setPipeLimit(theLab().rpc, PIPE, null);
      expect(o.result.stats.created).to.equal(rate * seconds);
      if (offeredS > seconds * 1.15) {
        // sipp itself was starved: the offered load was well under 130 %, so the premise is not met.
        console.log(`      machine too busy: sipp needed ${offeredS} s to offer ${seconds} s of load`);
        this.skip();
      }
      expect(o.refused, 'the excess got 503').to.be.greaterThan(0);
      expect(o.lb.refused).to.equal(o.refused);
      expect(failedAmongAdmitted / o.lb.admitted, 'failed among admitted').to.be.below(0.01);
      expect(carriedCps, 'successful calls/s').to.be.at.least(0.9 * POOL_CPS);
    });
  });
});

(process.env.SIPWEIGH_MEASURE_COLLAPSE === '1' ? describe : describe.skip)(
  'measurement: the same overload without admission control (SIPWEIGH_MEASURE_COLLAPSE=1)',
  function () {
    this.timeout(300000);
    it('logs how the pool collapses at 130 % without a limit', async function () {
      const lab = await startAdmissionLab({
        capacities: NOMINAL,
        label: 'collapse',
        lbDefines: { SW_ADMISSION: false },
      });
      try {
        const seconds = 15;
        const rate = Math.round(1.3 * POOL_CPS);
        const before = await lab.stats();
        const started = Date.now();
        const result = await runSippClient(lab.group, {
          name: 'uac-collapse',
          scenario: LAB_SCENARIOS.uac,
          localIp: CLIENT_IP,
          localPort: 5060,
          remote: `${lab.lb.address}:${lab.lb.port}`,
          rate,
          maxCalls: rate * seconds,
          timeoutS: seconds + 90,
        });
        const elapsedS = (Date.now() - started) / 1000;
        const dispatched = delta(before, await lab.stats(), 'script.sipweigh_dispatched');
        const s = result.stats;
        console.log(
          `      no admission at 130 %: ${JSON.stringify({
            pool_cps: POOL_CPS,
            offered_cps: rate,
            calls: s.created,
            successful: s.successful,
            failed: s.failed,
            retransmissions: s.retransmissions,
            elapsed_s: elapsedS,
            successful_per_s_of_run: Math.round((s.successful / elapsedS) * 10) / 10,
            mean_setup: s.raw['ResponseTime1(C)'],
          })}`,
        );
        expect(s.created).to.equal(rate * seconds);
        expect(dispatched).to.be.at.least(s.created);
      } finally {
        await lab.stop();
      }
    });
  },
);
