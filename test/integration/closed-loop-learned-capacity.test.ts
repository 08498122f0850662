/**
 * Learned capacity end to end (issue 18): the lab's real LB, three emulated backends of real capacity
 * 25, 50 and 100 calls/s that sipweigh is told are 58 each (a wrong datasheet: 174 in all), their
 * agents, and `sipweigh controller` with `scoring.capacity.learn: true`. Offered 78 % of the real
 * pool, the weights must leave the equal split for the real 1:2:4 and the admission limit follow the
 * learned pool rather than the configured one. Lab on 127.46.x.x; everything stopped by PID.
 */
import { expect } from 'chai';
import { admissionLimiterName, readLimiters } from '../../src/kamailio/admission.js';
import { startDaemonLab, type DaemonLab } from '../support/daemon-lab.js';
import { eventually, sleep } from '../support/harness.js';
import { formatWeights, labLoad, ratioError, WeightWatcher } from '../support/lb-watch.js';
import { waitReady } from './api-support.js';

const REAL = new Map([
  ['be1', 25],
  ['be2', 50],
  ['be3', 100],
]);
const POOL = 175;
const CONFIGURED = 58;

describe('closed loop with learned capacity (real LB, backends, agents, controller; configured equal)', function () {
  this.timeout(300000);
  let d: DaemonLab | undefined;
  let watcher: WeightWatcher | undefined;

  before(async function () {
    d = await startDaemonLab({
      backends: 3,
      capacities: [...REAL.values()],
      configuredCapacities: [CONFIGURED],
      net: 46,
    });
    const cfg = d.labConfig();
    cfg.scoring = { ...(cfg.scoring as object), capacity: { learn: true } };
    d.startController(cfg);
    await waitReady(d.base);
    watcher = new WeightWatcher(d.rpc, 200).start();
    await eventually(
      async () => {
        const w = await d!.lbWeights();
        return w !== null && [...REAL.keys()].every((id) => (w.get(id) ?? 0) > 0);
      },
      'first push of the controller',
      60000,
      200,
    );
  });

  after(async function () {
    watcher?.stop();
    await d?.stop();
  });

  it('at 78 % of the real pool: weights within ±25 % of 1:2:4, limit within the real pool', async () => {
    const rate = Math.round(0.78 * POOL);
    const start = Date.now();
    const uac = await labLoad(d!.lab, 'uac-learn', rate, 60);
    const limits: number[] = [];
    for (let i = 0; i < 58; i++) {
      await sleep(1000);
      const l = (await readLimiters(d!.rpc)).get(admissionLimiterName(1))?.limitCps;
      if (i >= 30 && l !== undefined && l !== null) limits.push(l);
    }
    const r = await uac.done();
    const late = watcher!.between(start + 30000, start + 58000);
    expect(late.length, 'weight samples in the last 28 s').to.be.at.least(50);
    const errors = late.map((s) => ratioError(s.weights, REAL)).sort((a, b) => a - b);
    const median = errors[Math.floor(errors.length / 2)]!;
    const conv = watcher!.firstAfter(start, (w) => ratioError(w, REAL) <= 0.25);
    limits.sort((a, b) => a - b);
    const medLimit = limits[Math.floor(limits.length / 2)]!;
    process.stdout.write(
      `      (weights within ±25 % of 1:2:4 first ${conv === null ? 'never' : `${conv - start} ms`} after load start; ` +
        `last 28 s: median error ${(median * 100).toFixed(1)} %, worst ${(errors[errors.length - 1]! * 100).toFixed(1)} %, ` +
        `last ${formatWeights(late[late.length - 1]!.weights)}; limit median ${medLimit.toFixed(1)} ` +
        `(range ${limits[0]!.toFixed(1)}-${limits[limits.length - 1]!.toFixed(1)}) calls/s; ` +
        `calls ${r.stats.created} created, ${r.stats.failed} failed)\n`,
    );
    // Equal weights (what the configured capacities give) are 71 % off the real ratio for be1.
    expect(median, 'median ratio error in the last 28 s').to.be.at.most(0.25);
    // Not run away past the pool: the real pool's limit is 0.92 x 175 = 161, and a probe may take an
    // estimate past a real capacity before it stops (served / 0.8; on a noise peak of the smoothed
    // served rate, further). Medians seen: 163 and 170 with the first standing rule; 168.1, 169.4
    // and, in a CI run, 177.1 (53 of 8,220 calls failed, as in the other runs) with the standing window (docs/controller.md, known
    // limit 2). A runaway estimate goes far past the pool; 1.05 x the pool is the bound.
    expect(medLimit, 'median admission limit (calls/s)').to.be.at.most(1.05 * POOL);
    expect(medLimit, 'median admission limit (calls/s)').to.be.at.least(0.5 * POOL);
  });

  it('/metrics says which rules moved each estimate, and they add up to it (the load is over: nothing moves now)', async () => {
    const m = await d!.metrics();
    const moved = (b: string, dir: 'up' | 'down', rules?: readonly string[]) =>
      m
        .filter(
          (x) =>
            x.name === 'sipweigh_backend_learned_moves_cps_total' &&
            x.labels.backend === b &&
            x.labels.direction === dir &&
            (rules === undefined || rules.includes(x.labels.rule!)),
        )
        .reduce((a, x) => a + x.value, 0);
    const lines: string[] = [];
    for (const b of REAL.keys()) {
      const learned = (await d!.backend(b))?.score?.learned_cps;
      expect(learned, `${b} learned_cps`).to.be.a('number');
      const byRule = m
        .filter(
          (x) =>
            x.name === 'sipweigh_backend_learned_moves_cps_total' && x.labels.backend === b && x.value > 0,
        )
        .map((x) => `${x.labels.rule} ${x.labels.direction} ${x.value.toFixed(1)}`);
      lines.push(`${b} ${learned}: ${byRule.join(', ')}`);
      // The prior plus every rule's moves is the estimate (learned_cps is rounded to 0.1).
      expect(CONFIGURED + moved(b, 'up') - moved(b, 'down'), `${b}: prior + moves`).to.be.closeTo(
        learned!,
        0.2,
      );
    }
    process.stdout.write(`      (${lines.join('; ')})\n`);
    // be1, configured 58 for a real 25, came down on queue evidence.
    expect(
      moved('be1', 'down', ['surge', 'fall', 'standing', 'suspect']),
      'be1 lowered by the queue',
    ).to.be.at.least(20);
  });
});
