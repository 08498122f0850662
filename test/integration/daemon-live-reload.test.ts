/**
 * Live reload of what docs/operations.md says applies live, each shown from outside (lab on
 * 127.32.x.x, `sipweigh controller` with its API): scoring parameters and `scoring.cycle_ms` (the
 * controller's weights follow a new weight_max, and step back up once per new cycle, while the LB
 * keeps the two equal backends at 50 slots of its 100 each), `admission` (the LB's
 * limiter follows the new headroom), `schedules` (a maintenance job added drains at the LB, removed
 * stops), `logging.level` (judged by the level field of the lines written, never their text) and
 * the API's token (the new one accepted, the old one refused). Both triggers: SIGHUP and
 * POST /api/v1/reload.
 */
import { expect } from 'chai';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readLimiters, admissionLimiterName } from '../../src/kamailio/admission.js';
import { startDaemonLab, type ControllerYaml, type DaemonLab } from '../support/daemon-lab.js';
import { eventually, sleep } from '../support/harness.js';
import { WeightWatcher } from '../support/lb-watch.js';
import { http, sample, waitReady } from './api-support.js';

const OLD_TOKEN = 'old-token-5f1c0e9a7b3d2c48e6a1';
const NEW_TOKEN = 'new-token-9d8e7c6b5a4f3e2d1c0b';

describe('live reload through the daemons (real lab on 127.32.x.x)', function () {
  this.timeout(300000);
  let d: DaemonLab | undefined;
  let cfg: ControllerYaml;
  let tokenFile = '';
  let token = OLD_TOKEN;
  let watcher: WeightWatcher | undefined;

  const reloads = async (): Promise<number> =>
    sample(await d!.metrics(), 'sipweigh_config_reloads_total', { result: 'applied' })?.value ?? 0;

  /** Writes `next` and sends SIGHUP; resolves once /metrics counts it applied. */
  async function sighup(next: ControllerYaml): Promise<void> {
    const before = await reloads();
    d!.writeConfig(next);
    process.kill(d!.controller!.pid, 'SIGHUP');
    await eventually(async () => (await reloads()) > before, 'the SIGHUP reload applied', 30000, 100);
  }
  /** Writes `next` and reloads through the API; resolves with the answer's changes. */
  async function apiReload(next: ControllerYaml): Promise<Record<string, unknown>> {
    d!.writeConfig(next);
    const r = await http('POST', `${d!.base}/api/v1/reload`, { token });
    expect(r.status, r.text).to.equal(200);
    return (r.json as { changes: Record<string, unknown> }).changes;
  }
  const weights = async () => (await d!.lbWeights()) ?? new Map<string, number>();
  /** The controller's own weights (its scale: the largest at weight_max), from the API. */
  const scored = async () => new Map((await d!.backends()).map((b) => [b.id, b.score?.weight ?? 0] as const));
  const limitAtLb = async () => (await readLimiters(d!.rpc)).get(admissionLimiterName(1))?.limitCps ?? null;
  const logLevelsSince = (offset: number): number[] =>
    readFileSync(d!.controller!.logFile, 'utf8')
      .slice(offset)
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => (JSON.parse(l) as { level: number }).level);

  before(async function () {
    d = await startDaemonLab({ backends: 2, net: 32 });
    tokenFile = join(d.lab.state.dir, 'rotating.token');
    writeFileSync(tokenFile, `${OLD_TOKEN}\n`, { mode: 0o600 });
    cfg = d.labConfig();
    (cfg.api as Record<string, unknown>).token_file = tokenFile;
    // Reconciles also run a scoring cycle: none during this test, so the cycles seen are cycle_ms's.
    cfg.schedules = { reconcile: '0 0 * * * *' };
    d.startController(cfg);
    await waitReady(d.base);
    watcher = new WeightWatcher(scored, 100).start();
    await eventually(
      async () => {
        // Scored and pushed by the controller: 100 each on its scale, 50 slots each at the LB (the
        // lab's own list says 100 each before the controller has pushed).
        const api = await d!.backends();
        const w = await weights();
        return (
          api.every((b) => b.score?.weight === 100 && b.weights.lb1 === 50) &&
          w.get('be1') === 50 &&
          w.get('be2') === 50
        );
      },
      'both backends at weight 100, 50 slots each at the LB',
      60000,
    );
  });

  after(async function () {
    watcher?.stop();
    await d?.stop();
  });

  it('SIGHUP: scoring.weight_max applies live (the controller’s weights follow it at the next cycle)', async function () {
    const next = structuredClone(cfg);
    next.scoring = { ...(cfg.scoring as object), weight_max: 50 };
    const from = Date.now();
    await sighup(next);
    const reached = await eventually(
      () => watcher!.firstAfter(from, (w) => w.get('be1') === 50 && w.get('be2') === 50),
      'both backends at the new weight_max 50',
      30000,
    );
    expect(reached - from).to.be.below(5000);
    // The shares do not move: the LB still deals half the calls to each.
    expect(await weights()).to.deep.equal(
      new Map([
        ['be1', 50],
        ['be2', 50],
      ]),
    );
    cfg = next;
  });

  it('POST /api/v1/reload: scoring.cycle_ms applies live (back to 100 in steps of 20, one per 3 s cycle)', async function () {
    const next = structuredClone(cfg);
    next.scoring = { ...(cfg.scoring as object), cycle_ms: 3000 };
    delete (next.scoring as Record<string, unknown>).weight_max;
    const from = Date.now();
    const changes = await apiReload(next);
    expect(changes.scoring).to.include.members(['cycle_ms', 'params.weight_max']);
    const reached = await eventually(
      () => watcher!.firstAfter(from, (w) => w.get('be1') === 100 && w.get('be2') === 100),
      'both backends back at 100',
      30000,
    );
    // 20 points per cycle at most: 50 -> 70 (at the reload) -> 90 -> 100, cycles 3 s apart.
    expect(reached - from).to.be.at.least(5000);
    const seen = new Set(watcher!.between(from, reached).map((s) => s.weights.get('be1')));
    expect([...seen]).to.include.members([70, 90]);
    // Back to the default cadence for what follows.
    const fast = structuredClone(next);
    fast.scoring = { ...(next.scoring as object), cycle_ms: 250 };
    await sighup(fast);
    cfg = fast;
  });

  it('admission.headroom applies live: the LB’s limiter and the API follow', async function () {
    const before = await eventually(limitAtLb, 'an admission limit at the LB', 30000);
    // Pool 2 x 100 calls/s, headroom 0.92, one LB node.
    expect(before).to.be.within(180, 188);
    const next = structuredClone(cfg);
    next.admission = { headroom: 0.5 };
    await sighup(next);
    await eventually(async () => {
      const l = await limitAtLb();
      return l !== null && l >= 98 && l <= 102;
    }, 'the LB limit at 0.5 x 200 calls/s');
    const status = await d!.status<{ sets: { admission_limit_cps: number | null }[] }>();
    expect(status.sets[0]!.admission_limit_cps).to.be.within(98, 102);
    cfg = next;
  });

  // Found by this test: disabling admission used to leave the LB's last limit in force for good.
  it('admission.enabled: false applies live: the LB’s limit is lifted; enabled again, it returns', async function () {
    const off = structuredClone(cfg);
    off.admission = { ...(cfg.admission as object), enabled: false };
    const changes = await apiReload(off);
    expect(changes.admission).to.equal(true);
    const limiter = async () => (await readLimiters(d!.rpc)).get(admissionLimiterName(1));
    await eventually(
      async () => {
        const p = await limiter();
        return p !== undefined && p.limitCps === null;
      },
      'no admission limit at the LB once admission is disabled',
      15000,
      250,
    );
    await sighup(cfg);
    await eventually(async () => {
      const l = await limitAtLb();
      return l !== null && l >= 98 && l <= 102;
    }, 'the LB limit back at 0.5 x 200 calls/s');
  });

  it('schedules apply live: a drain job added drains be2 at the LB; removed, it stops', async function () {
    const next = structuredClone(cfg);
    next.schedules = { reconcile: '0 0 * * * *', maintenance: [{ backend: 'be2', drain: '* * * * * *' }] };
    const changes = await apiReload(next);
    expect(changes.schedules).to.equal(true);
    await eventually(
      async () => (await weights()).get('be2') === 0,
      'be2 drained at the LB by the new job',
      20000,
    );
    expect((await d!.backend('be2'))!.drained).to.equal(true);
    const names = (await d!.status<{ schedules: { name: string }[] }>()).schedules.map((s) => s.name);
    expect(names).to.deep.equal(['reconcile', 'drain be2']);

    await sighup(cfg);
    const after = (await d!.status<{ schedules: { name: string }[] }>()).schedules.map((s) => s.name);
    expect(after).to.deep.equal(['reconcile']);
    const u = await http('POST', `${d!.base}/api/v1/backends/be2/undrain`, { token });
    expect(u.status).to.equal(200);
    await eventually(async () => ((await weights()).get('be2') ?? 0) > 0, 'be2 back at the LB', 30000);
    // No job drains it again.
    await sleep(2500);
    expect((await d!.backend('be2'))!.drained).to.equal(false);
    expect((await weights()).get('be2')).to.be.greaterThan(0);
  });

  it('logging.level applies live: at error a drain and undrain write nothing below error; at info they do', async function () {
    const quiet = structuredClone(cfg);
    quiet.logging = { level: 'error' };
    const changes = await apiReload(quiet);
    expect(changes.logging_level).to.deep.equal({ from: 'info', to: 'error' });
    const drainBe1 = async () => {
      expect((await http('POST', `${d!.base}/api/v1/backends/be1/drain`, { token })).status).to.equal(200);
      await eventually(async () => (await weights()).get('be1') === 0, 'be1 drained at the LB', 20000);
      expect((await http('POST', `${d!.base}/api/v1/backends/be1/undrain`, { token })).status).to.equal(200);
      await eventually(async () => ((await weights()).get('be1') ?? 0) > 0, 'be1 back at the LB', 30000);
    };
    // The previous test's slow start logs a weights line every cycle; in the CI of 2026-12-05 one
    // of them, logged around the switch, landed after an offset taken at the reply. Let the switch
    // settle before the offset: what is asserted is the drain and undrain at error.
    await sleep(500);
    let offset = statSync(d!.controller!.logFile).size;
    await drainBe1();
    await sleep(500);
    expect(logLevelsSince(offset).filter((l) => l < 50)).to.deep.equal([]);

    await sighup(cfg);
    offset = statSync(d!.controller!.logFile).size;
    await drainBe1();
    await sleep(500);
    expect(logLevelsSince(offset).filter((l) => l === 30).length).to.be.greaterThan(0);
  });

  it('the API token rotates live: after SIGHUP the new token is accepted and the old one refused', async function () {
    expect((await http('POST', `${d!.base}/api/v1/reload`, { token: OLD_TOKEN })).status).to.equal(200);
    writeFileSync(tokenFile, `${NEW_TOKEN}\n`);
    await sighup(cfg);
    const old = await http('POST', `${d!.base}/api/v1/reload`, { token: OLD_TOKEN });
    expect(old.status).to.equal(401);
    expect(old.headers.get('www-authenticate')).to.match(/^Bearer/);
    token = NEW_TOKEN;
    const fresh = await http('POST', `${d!.base}/api/v1/reload`, { token: NEW_TOKEN });
    expect(fresh.status).to.equal(200);
    expect(
      (await http('POST', `${d!.base}/api/v1/backends/be1/drain`, { token: OLD_TOKEN })).status,
    ).to.equal(401);
    expect((await d!.backend('be1'))!.drained).to.equal(false);
  });
});
