/**
 * The quality bench's kamailio_oc lab, every part real (issue 18): Kamailio 6.1.4's dispatcher as the
 * LB with alg 64 (round robin shed by RFC 7339 overload control) and OPTIONS every second, in front of
 * the same emulated backends as every other policy (the default Kamailio) answering those pings with
 * their oc (src/lab/kamailio/backend.cfg SW_OC, lb.cfg SW_DS_OC). Judged by what the LB holds
 * (`dispatcher.oclist`), by the overloaded backend's socket queue (/proc/net/udp) and by where the
 * calls went (each backend's dialog counter). Lab on
 * 127.54.x.x; everything stopped by PID. Skipped, and named so, where Kamailio 6.1 is not built.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { startLab, type RunningLab } from '../../src/lab/lab.js';
import { KAMAILIO_61_BINARY, kamailioFeatures, probeKamailio } from '../../src/lab/platforms.js';
import { findUdpSocket, parseProcNetUdp } from '../../src/metrics/proc-net-udp.js';
import { eventually, sleep } from '../support/harness.js';
import { labLoad } from '../support/lb-watch.js';

const CAPACITIES = [25, 50, 100];
const POOL = 175;

interface OcEntry {
  readonly uri: string;
  readonly ocrate: number;
  readonly ocseq: number;
}

/** Bytes waiting in the socket bound to address:port (its receive memory, /proc/net/udp). */
function rxQueueBytes(address: string, port: number): number {
  const rows = parseProcNetUdp(readFileSync('/proc/net/udp', 'utf8'));
  return findUdpSocket(rows, address, port)?.rxQueueBytes ?? Number.NaN;
}

const lb61 = probeKamailio(KAMAILIO_61_BINARY);
const available = lb61 !== null && kamailioFeatures(lb61.version).overloadControlAlg;
const itOn61 = available ? it : it.skip;
const suffix = available ? '' : ` (skipped: no Kamailio 6.1 at ${KAMAILIO_61_BINARY})`;

describe(`lab: Kamailio 6.1's alg 64 fed by the backends' overload control (the quality bench's kamailio_oc)${suffix}`, function () {
  this.timeout(180000);
  let lab: RunningLab | undefined;
  let lbRpc: KamailioRpcClient | undefined;
  let backendRpc: KamailioRpcClient[] = [];

  before(async function () {
    if (!available) return;
    lab = await startLab({
      backends: 3,
      capacities: CAPACITIES,
      workers: 2,
      net: 54,
      dir: mkdtempSync(join(tmpdir(), 'sipweigh-oc-')),
      agents: false,
      controller: false,
      initialWeights: 'equal',
      lbKamailio: KAMAILIO_61_BINARY,
      backendDefines: { SW_OC: true },
      lbDefines: {
        SW_NO_BACKSTOP: true,
        SW_DS_ALG: 64,
        SW_DS_OC: true,
        SW_DS_PING_INTERVAL: 1,
        SW_DS_PROBING_MODE: 1,
      },
    });
    const plan = lab.state.plan;
    lbRpc = new KamailioRpcClient({
      url: lab.state.lb_rpc_url,
      username: plan.lb.rpc.username,
      password: plan.lb.rpc.password,
    });
    backendRpc = plan.backends.map(
      (b) => new KamailioRpcClient({ url: `http://${b.sip.address}:${b.rpcPort}/RPC` }),
    );
  });

  after(async function () {
    lbRpc?.close();
    backendRpc.forEach((c) => c.close());
    await lab?.stop();
  });

  /** Backend id (be1…) -> its oc entry in the LB, by the list's URI. */
  async function oclist(): Promise<Map<string, OcEntry>> {
    const r = (await lbRpc!.call('dispatcher.oclist', [1])) as OcEntry[];
    const byUri = new Map(r.map((e) => [e.uri, e]));
    return new Map(
      lab!.state.plan.backends.flatMap((b) => {
        const e = byUri.get(`sip:${b.sip.address}:${b.sip.port}`);
        return e ? [[b.id, e] as const] : [];
      }),
    );
  }

  async function dialogs(): Promise<number[]> {
    return Promise.all(
      backendRpc.map(async (c) => {
        const r = (await c.call('stats.fetch', ['dialog:processed_dialogs'])) as Record<string, unknown>;
        return Number(r['dialog.processed_dialogs']);
      }),
    );
  }

  itOn61(
    'idle: every backend answers the pings with oc 0, and the LB takes each answer (ocseq rises)',
    async () => {
      let first: Map<string, OcEntry> | undefined;
      await eventually(
        async () => {
          first = await oclist();
          return first.size === 3 && [...first.values()].every((e) => e.ocseq >= 1);
        },
        'an oc answer from every backend',
        15000,
        250,
      );
      for (const e of first!.values()) expect(e.ocrate, e.uri).to.equal(0);
      await sleep(2500);
      const later = await oclist();
      for (const [id, e] of later) {
        expect(e.ocseq, id).to.be.above(first!.get(id)!.ocseq);
        expect(e.ocrate, id).to.equal(0);
      }
    },
  );

  itOn61(
    "under round robin's even split at 70 % of the pool, be1 (25 calls/s, sent 40) sheds its excess onward, be3 sheds nothing",
    async () => {
      const rate = Math.round(0.7 * POOL);
      const be1 = lab!.state.plan.backends[0]!;
      const uac = await labLoad(lab!, 'uac-oc', rate, 30);
      let be1Max = 0;
      let be3Max = 0;
      const queue: number[] = [];
      const until = Date.now() + 28000;
      let mid: { at: number; n: number[] } | undefined;
      while (Date.now() < until) {
        const oc = await oclist();
        be1Max = Math.max(be1Max, oc.get('be1')?.ocrate ?? 0);
        be3Max = Math.max(be3Max, oc.get('be3')?.ocrate ?? 0);
        if (Date.now() > until - 14000) {
          mid ??= { at: Date.now(), n: await dialogs() };
          queue.push(rxQueueBytes(be1.sip.address, be1.sip.port));
        }
        await sleep(500);
      }
      const end = { at: Date.now(), n: await dialogs() };
      await uac.done();
      const seconds = (end.at - mid!.at) / 1000;
      const perSecond = end.n.map((n, i) => (n - mid!.n[i]!) / seconds);
      const sorted = [...queue].sort((a, b) => a - b);
      process.stdout.write(
        `      (be1 oc up to ${be1Max} %, be3 up to ${be3Max} %; new calls per second over the last ` +
          `${seconds.toFixed(1)} s ${perSecond.map((n) => n.toFixed(1)).join('/')} of ${rate}; be1's receive ` +
          `queue median ${sorted[Math.floor(sorted.length / 2)]} bytes)\n`,
      );
      // be1 is told to shed (it is sent 40 calls/s for 25); be3 (100 calls/s) is not.
      expect(be1Max).to.be.at.least(25);
      expect(be3Max).to.be.below(be1Max);
      // Where the shed calls went: round robin alone sends every backend a third (be3: rate / 3, all
      // of which it serves). A skipped selection goes to the next destination, so be1's excess reaches
      // be2 and be2's be3: be3 starts more than a third only if the LB applied the oc it was told.
      expect(perSecond[2]!).to.be.above(1.1 * (rate / 3));
      // Shedding is not exclusion: be1 still serves its part.
      expect(perSecond[0]!).to.be.above(10);
    },
  );
});
