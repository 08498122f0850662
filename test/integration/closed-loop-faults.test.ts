/**
 * The closed loop when things go wrong, every part real (lab on 127.11.x.x; the LB Kamailio, or
 * OpenSIPS 3.6 in front of Kamailio backends): the controller killed under load, the LB's management
 * interface (Kamailio JSON-RPC, OpenSIPS MI over HTTP) cut for 30 s (through a TCP relay the test
 * controls, so the LB keeps serving calls), every agent frozen at once (a partition as the controller
 * sees it), and offered load above the pool's capacity (admission control driven by the controller).
 */
import { expect } from 'chai';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { readLimiters, admissionLimiterName } from '../../src/kamailio/admission.js';
import { freezeMember, killMember, labProcess } from '../../src/lab/lab-control.js';
import { startLab, type RunningLab } from '../../src/lab/lab.js';
import { labApiUrl } from '../../src/lab/lab-configs.js';
import { followEvents, type EventFollower } from '../../src/api/event-client.js';
import type { StampedEvent } from '../../src/controller/events.js';
import { processTreeCpuMs } from '../../src/lab/process-cpu.js';
import { pidAlive } from '../../src/lab/processes.js';
import { LAB_SCENARIOS } from '../../src/lab/scenarios.js';
import { runSippClient } from '../../src/lab/sipp.js';
import { sipweighCommand } from '../../src/lab/self-command.js';
import { eventually, sleep } from '../support/harness.js';
import { describeEachLb, labPlatformOptions, lbUnderTest, type LbUnderTest } from '../support/platforms.js';
import { formatWeights, labLoad, ratioError, WeightWatcher } from '../support/lb-watch.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { sipweigh } from '../support/cli.js';
import type { ControllerStatus } from '../../src/controller/status.js';
import { labClient } from '../../src/lab/topology.js';

const CAPACITIES = new Map([
  ['be1', 25],
  ['be2', 50],
  ['be3', 100],
]);
/** Nominal pool (workers / service delay): what the controller's config declares. */
const POOL = 175;
/**
 * What the emulated pool really carries: an emulated backend saturates at 97-98.5 % of its nominal
 * figure (KAMAILIO-NOTES.md, "Emulating a backend": the other messages of each call share its
 * workers). "The pool carries 90 % of its capacity" is judged against this.
 */
const POOL_REAL = 0.975 * POOL;
const PROXY = { address: '127.11.0.9', port: 5071 };

describeEachLb('closed loop under faults (real LB, backends, agents, controller)', function (platform) {
  this.timeout(300000);
  let lab: RunningLab | undefined;
  let lb: LbUnderTest | undefined;
  let watcher: WeightWatcher | undefined;
  let proxy: TcpProxy | undefined;
  /** What the controller told (GET /api/v1/events), from its start. */
  const told: StampedEvent[] = [];
  let follower: EventFollower | undefined;

  /** The lab's controller config, pointed at the relay instead of the LB's RPC (or MI) port. */
  function startController(): number {
    const file = lab!.state.configs.controller;
    const cfg = parse(readFileSync(file, 'utf8')) as { lb_nodes: { rpc: { url: string } }[] };
    const url = new URL(cfg.lb_nodes[0]!.rpc.url);
    url.host = `${PROXY.address}:${PROXY.port}`;
    cfg.lb_nodes[0]!.rpc.url = url.toString();
    const viaProxy = join(lab!.state.dir, 'controller-via-proxy.yaml');
    writeFileSync(viaProxy, stringify(cfg), { mode: 0o600 });
    const self = sipweighCommand();
    const p = lab!.group.spawn('controller', self.cmd, [...self.args, 'controller', '--config', viaProxy]);
    return p.pid;
  }

  /** Follows the controller's events once its API answers (the kept ones first: nothing is missed). */
  async function followController(): Promise<EventFollower> {
    const token = readFileSync(lab!.state.configs.apiToken, 'utf8').trim();
    return eventually(
      async () => {
        const f = followEvents({ url: labApiUrl(lab!.state.plan), token, history: true }, (e) =>
          told.push(e),
        );
        try {
          await f.ready;
          return f;
        } catch {
          return null;
        }
      },
      'the controller’s event stream',
      60000,
      200,
    );
  }
  const toldOf = (type: StampedEvent['type']) => told.some((e) => e.type === type);

  before(async function () {
    lab = await startLab({
      backends: 3,
      capacities: [...CAPACITIES.values()],
      // 2 workers: service delays of 80/40/20 ms per INVITE. With 4 (160 ms for the 25 calls/s
      // backend) one queued INVITE alone is 40 ms of OPTIONS round trip, the knee: a real server's
      // per-message work is well under a millisecond, and the emulation should not be coarser than
      // the signal it is judged by.
      workers: 2,
      net: 11,
      dir: mkdtempSync(join(tmpdir(), 'sipweigh-faults-')),
      ...labPlatformOptions(platform),
    });
    const { rpc: lbRpc } = lab.state.plan.lb;
    proxy = await TcpProxy.start({
      listen: PROXY,
      target: { address: lbRpc.address, port: lbRpc.port },
      localAddress: lbRpc.address,
    });
    startController();
    follower = await followController();
    lb = lbUnderTest(lab);
    watcher = new WeightWatcher(() => lb!.readWeights(), 200).start();
    // The lab's list already has capacity-proportional weights: wait for the controller's own push.
    await eventually(() => toldOf('node_reachable'), 'the controller’s first push', 60000, 200);
    await eventually(
      async () => {
        const w = await lb!.readWeights();
        return w !== null && [...w.values()].every((x) => x > 0) && ratioError(w, CAPACITIES) <= 0.1;
      },
      'weights settled after the first push',
      60000,
      200,
    );
  });

  after(async function () {
    follower?.close();
    watcher?.stop();
    lb?.close();
    await lab?.stop();
    await proxy?.close();
  });

  /** Cumulative 200s answered over time, from sipp's periodic -trace_counts rows. */
  function answeredTimeline(runDir: string): { elapsedS: number; answered: number }[] {
    const file = readdirSync(runDir).find((f) => f.startsWith('uac-admission') && f.endsWith('_counts.csv'));
    if (!file) return [];
    const [head, ...rows] = readFileSync(join(runDir, file), 'utf8').trim().split('\n');
    const cols = head?.split(';') ?? [];
    const elapsed = cols.indexOf('ElapsedTime');
    const ok = cols.indexOf('4_200_Recv');
    return rows.map((row) => {
      const cells = row.split(';');
      const [h = 0, m = 0, sec = 0] = (cells[elapsed] ?? '').split(':').map(Number);
      return { elapsedS: h * 3600 + m * 60 + sec, answered: Number(cells[ok]) };
    });
  }

  /** Weights at the capacity ratio and unchanged for 3 s (no ramp or recovery in progress). */
  async function settled(): Promise<string> {
    return eventually(
      () => {
        const recent = watcher!.between(Date.now() - 3000, Date.now());
        const first = recent[0];
        if (!first || recent.length < 10) return null;
        const key = formatWeights(first.weights);
        const steady = recent.every((s) => formatWeights(s.weights) === key);
        return steady && ratioError(first.weights, CAPACITIES) <= 0.1 ? key : null;
      },
      'weights settled at the capacity ratio',
      60000,
      250,
    );
  }

  const load = (name: string, rate: number, seconds: number) => labLoad(lab!, name, rate, seconds);

  it('keeps the LB on its weights when the LB’s JSON-RPC/MI is cut for 30 s: no crash, no spin, converges after', async () => {
    const pid = labProcess(lab!, 'controller').pid;
    const before = (await lb!.readWeights())!;
    proxy!.setUp(false);
    const cpuBefore = processTreeCpuMs(pid).cpuMs;
    // Something the controller must push: be1 drained by its agent (SIGUSR1) while the LB is cut off.
    process.kill(labProcess(lab!, 'agent-be1').pid, 'SIGUSR1');
    try {
      await sleep(30000);
      const cpuMs = Math.round(processTreeCpuMs(pid).cpuMs - cpuBefore);
      expect(pidAlive(pid), 'controller alive').to.equal(true);
      expect(formatWeights((await lb!.readWeights())!), 'LB untouched while cut off').to.equal(
        formatWeights(before),
      );
      process.stdout.write(
        `      (30 s cut: ${proxy!.refusedWhileDown} connection attempts, controller CPU ${cpuMs} ms)\n`,
      );
      // Backoff to 1 s at most: about one attempt a second, not a spin.
      expect(proxy!.refusedWhileDown, 'attempts while cut').to.be.within(5, 60);
      expect(cpuMs, 'controller CPU over the 30 s').to.be.below(10000);
    } catch (e) {
      // The suite's next tests need the LB reachable and be1 back.
      proxy!.setUp(true);
      process.kill(labProcess(lab!, 'agent-be1').pid, 'SIGUSR2');
      throw e;
    }
    proxy!.setUp(true);
    const back = Date.now();
    const applied = await eventually(
      () => watcher!.firstAfter(back, (w) => w.get('be1') === 0),
      'the drain pushed after the LB returned',
      20000,
      100,
    );
    process.stdout.write(`      (converged ${applied - back} ms after the RPC returned)\n`);
    expect(applied - back, 'within one retry step (1 s) plus a push').to.be.below(3000);
    process.kill(labProcess(lab!, 'agent-be1').pid, 'SIGUSR2');
    await eventually(async () => ((await lb!.readWeights())?.get('be1') ?? 0) > 0, 'be1 undrained', 20000);
  });

  it('keeps the last weights when every agent goes silent at once (panic threshold), and says so', async () => {
    const before = await settled();
    const agents = ['agent-be1', 'agent-be2', 'agent-be3'];
    agents.forEach((a) => freezeMember(lab!, a, true));
    try {
      await eventually(() => toldOf('panic_started'), 'the controller tells its panic', 15000, 200);
      await sleep(3000);
      expect(formatWeights((await lb!.readWeights())!), 'weights kept through the partition').to.equal(
        before,
      );
      // ...and the status says so, as `sipweigh status` shows it.
      const statusFile = join(lab!.state.dir, 'status.json');
      await eventually(
        () => (JSON.parse(readFileSync(statusFile, 'utf8')) as ControllerStatus).sets[0]?.mode === 'panic',
        'status file shows the panic',
        5000,
        200,
      );
      const shown = sipweigh('status', '--file', statusFile);
      expect(shown.code, shown.err).to.equal(0);
      expect(shown.out).to.match(/set 1: PANIC \(0\/3 answering.*last weights kept/);
    } finally {
      agents.forEach((a) => freezeMember(lab!, a, false));
    }
    await eventually(() => toldOf('panic_ended'), 'panic over', 20000, 200);
  });

  it('admits what the pool can carry at 130 % offered load: admitted calls succeed, the excess gets 503', async () => {
    await settled();
    const limiter = admissionLimiterName(1);
    const limit = await eventually(
      async () => {
        const l = (await readLimiters(lb!.admission)).get(limiter)?.limitCps ?? null;
        return l !== null && l >= 0.8 * POOL ? l : null;
      },
      'the controller sets the admission limit near the pool capacity',
      30000,
      200,
    );
    process.stdout.write(`      (limit set by the controller: ${limit} calls/s for a pool of ${POOL})\n`);
    expect(limit).to.be.within(0.8 * POOL, POOL);
    const { plan } = lab!.state;
    // 30 s of overload: the first seconds are the onset (the pool's queues stand up once before the
    // controller trims the limit to what the backends really carry); the pool is judged on the
    // last 20 s, and the whole run is printed too.
    const seconds = 30;
    const rate = Math.round(1.3 * POOL);
    const r = await runSippClient(lab!.group, {
      name: 'uac-overload',
      scenario: LAB_SCENARIOS.uacAdmission,
      ...labClient(plan),
      rate,
      maxCalls: rate * seconds,
      timeoutS: seconds + 40,
      traceCounts: true,
    });
    const answered = r.counts['4_200_Recv'] ?? 0;
    const refused = r.counts['3_503_Recv'] ?? 0;
    const failedAmongAdmitted = r.stats.created - r.stats.successful;
    const timeline = answeredTimeline(lab!.group.runDir);
    const at = (s: number) => timeline.find((x) => x.elapsedS >= s)?.answered ?? NaN;
    const steady = (at(30) - at(10)) / 20;
    process.stdout.write(
      `      (130 %: ${r.stats.created} calls, ${answered} answered, ${refused} refused with 503, ` +
        `${failedAmongAdmitted} admitted calls failed; carried ${(answered / seconds).toFixed(1)} calls/s ` +
        `over the run, ${steady.toFixed(1)} calls/s from 10 s to 30 s; pool ${POOL} nominal, ${POOL_REAL.toFixed(1)} real)\n`,
    );
    expect(refused, 'the excess got 503').to.be.greaterThan(0);
    expect(
      failedAmongAdmitted / Math.max(1, answered + failedAmongAdmitted),
      'failed among admitted',
    ).to.be.below(0.01);
    // A floor that catches a limiter set far too low, not a goodput figure (that is the quality
    // bench's, repeated and interleaved): one 20 s window on this shared 2-core machine carried
    // 147.7-161.1 calls/s on Kamailio and 149.8-160.9 on OpenSIPS over the runs of 2026-12-04, so
    // 0.9 x the real pool (153.5) failed runs that were fine.
    expect(steady, 'carried calls/s in steady overload').to.be.at.least(0.85 * POOL_REAL);
  });

  it('keeps calls completing on the last weights when the controller is SIGKILLed under load', async () => {
    const uac = await load('uac-orphan', 60, 15);
    await sleep(2000);
    await killMember(lab!, 'controller');
    const before = formatWeights((await lb!.readWeights())!);
    const r = await uac.done();
    expect(formatWeights((await lb!.readWeights())!), 'LB weights after the controller died').to.equal(
      before,
    );
    expect(r.stats.created).to.equal(900);
    expect(r.stats.failed, 'failed calls with the controller dead').to.equal(0);
    expect(r.stats.successful).to.equal(900);
  });
});
