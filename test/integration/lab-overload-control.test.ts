/**
 * The quality bench's kamailio_oc lab, every part real (issue 18): Kamailio 6.1.4's dispatcher as the
 * LB with alg 64 (round robin shed by RFC 7339 overload control) and OPTIONS every second, in front of
 * the same emulated backends as every other policy (the default Kamailio) answering those pings with
 * their oc (src/lab/kamailio/backend.cfg SW_OC, lb.cfg SW_DS_OC). Judged by what the LB holds
 * (`dispatcher.oclist`) and by where the calls went (each backend's dialog counter). Lab on
 * 127.54.x.x; everything stopped by PID. Skipped, and named so, where Kamailio 6.1 is not built.
 */
import { expect } from 'chai';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fetchEffectiveWeights } from '../../src/kamailio/fetch-dispatcher-list.js';
import { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { startLab, type RunningLab } from '../../src/lab/lab.js';
import { KAMAILIO_61_BINARY, kamailioFeatures, probeKamailio } from '../../src/lab/platforms.js';
import { eventually, sleep } from '../support/harness.js';
import { labLoad } from '../support/lb-watch.js';

const CAPACITIES = [25, 50, 100];
const POOL = 175;

interface OcEntry {
  readonly uri: string;
  readonly ocrate: number;
  readonly ocseq: number;
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
    "under round robin's even split at 70 % of the pool, be1 (25 calls/s, sent 40) sheds and be3 does not",
    async () => {
      const rate = Math.round(0.7 * POOL);
      const before = await dialogs();
      const uac = await labLoad(lab!, 'uac-oc', rate, 30);
      let be1Max = 0;
      let be3Max = 0;
      const until = Date.now() + 28000;
      let mid: number[] | undefined;
      while (Date.now() < until) {
        const oc = await oclist();
        be1Max = Math.max(be1Max, oc.get('be1')?.ocrate ?? 0);
        be3Max = Math.max(be3Max, oc.get('be3')?.ocrate ?? 0);
        if (mid === undefined && Date.now() > until - 14000) mid = await dialogs();
        await sleep(500);
      }
      const end = await dialogs();
      await uac.done();
      // Its last 14 s, once the oc has had time to bite: be1's share of the new calls.
      const last = end.map((n, i) => n - mid![i]!);
      const total = last.reduce((a, b) => a + b, 0);
      const be1Share = last[0]! / total;
      process.stdout.write(
        `      (be1 oc up to ${be1Max} %, be3 up to ${be3Max} %; last 14 s shares ` +
          `${last.map((n) => (n / total).toFixed(2)).join('/')}; calls ${end.map((n, i) => n - before[i]!).join('/')})\n`,
      );
      // be1 must shed about 40 % of its round-robin share (40 -> under 25 calls/s); be3 has room.
      expect(be1Max).to.be.at.least(25);
      expect(be3Max).to.be.below(be1Max);
      // Round robin alone would give it a third; shedding is not dropping it (it keeps ~20 %).
      expect(be1Share).to.be.below(0.27);
      expect(be1Share).to.be.above(0.1);
      // Still in rotation: its pings answered, not timed out (a dropped reply would take it out).
      const weights = await fetchEffectiveWeights(lbRpc!);
      expect(weights?.get('be1') ?? 0).to.be.above(0);
      expect(total).to.be.above(rate * 10);
    },
  );
});
