/**
 * Flap damping through the daemons (lab on 127.36.x.x, three backends): be3's agent is frozen
 * (SIGSTOP) until the controller says be3 is down, then thawed, again and again. What
 * src/health/state-machine.ts promises, seen at the LB: every fall adds 1 to a penalty (half-life
 * `flap_half_life_ms`), and above 1.5 a returning backend is held out for
 * flap_base_hold_ms × 2^(penalty − 1.5) even though it answers. So the first return is quick, the
 * second is held, a backend that answers only briefly while held never re-enters the LB's list, and
 * the return after that is held longer still. be1 and be2 are untouched throughout.
 */
import { expect } from 'chai';
import { freezeMember } from '../../src/lab/lab-control.js';
import { startDaemonLab, type DaemonLab, allUpAndPushed } from '../support/daemon-lab.js';
import { eventually, sleep } from '../support/harness.js';
import { WeightWatcher } from '../support/lb-watch.js';
import { waitReady } from './api-support.js';

const BASE_HOLD_MS = 3000;

describe('flap damping through the daemons (real lab on 127.36.x.x)', function () {
  this.timeout(300000);
  let d: DaemonLab | undefined;
  let watcher: WeightWatcher | undefined;
  const states: { at: number; state: string }[] = [];

  const be3State = async () => (await d!.backend('be3'))?.state;
  const be3Weight = (w: ReadonlyMap<string, number>) => w.get('be3') ?? 0;
  async function waitState(want: string, what: string): Promise<void> {
    await eventually(
      async () => {
        const s = await be3State();
        if (s !== undefined) states.push({ at: Date.now(), state: s });
        return s === want;
      },
      what,
      60000,
      100,
    );
  }
  /** Freezes be3's agent until the controller has it down; resolves when it is down. */
  async function fall(): Promise<void> {
    freezeMember(d!.lab, 'agent-be3', true);
    await waitState('down', 'be3 down');
    await eventually(async () => (await d!.lbWeights())?.get('be3') === 0, 'be3 out at the LB', 10000);
  }
  /**
   * Thaws be3's agent; resolves with the ms until the controller had it up again (it enters the
   * LB's rotation with that cycle's push), once the LB lists it in rotation. Every read is started
   * after the thaw, so none can report what the LB held before.
   */
  async function rise(): Promise<number> {
    const at = Date.now();
    freezeMember(d!.lab, 'agent-be3', false);
    const upAt = await eventually(
      async () => {
        const s = await be3State();
        if (s !== undefined) states.push({ at: Date.now(), state: s });
        return s === 'up' ? Date.now() : null;
      },
      'be3 up again',
      90000,
      100,
    );
    await eventually(async () => ((await d!.lbWeights())?.get('be3') ?? 0) > 0, 'be3 back at the LB', 10000);
    return upAt - at;
  }

  before(async function () {
    d = await startDaemonLab({ backends: 3, net: 36 });
    const cfg = d.labConfig();
    cfg.heartbeat = { ...cfg.heartbeat, flap_base_hold_ms: BASE_HOLD_MS, flap_half_life_ms: 60000 };
    d.startController(cfg);
    await waitReady(d.base);
    watcher = new WeightWatcher(d.rpc, 100).start();
    // Up by the controller's word and pushed by it (the lab's initial list has them all in rotation
    // before the controller has heard a single answer).
    await allUpAndPushed(d!, ['be1', 'be2', 'be3'], 'all three backends up and in rotation');
  });

  after(async function () {
    watcher?.stop();
    if (d) freezeMember(d.lab, 'agent-be3', false);
    await d?.stop();
  });

  let first = 0;
  let second = 0;

  it('the first fall costs nothing extra: back within the confirmation (5 answers)', async function () {
    await fall();
    first = await rise();
    expect(first).to.be.below(BASE_HOLD_MS);
  });

  it('the second fall is held: back only after the flap hold, answering all the while', async function () {
    await fall();
    const thawed = Date.now();
    // Read 2.5 s into the hold: answering, yet still out at the LB.
    const midHold = sleep(2500).then(async () => ({ lb: await d!.lbWeights(), api: await be3State() }));
    second = await rise();
    const mid = await midHold;
    expect(mid.lb?.get('be3')).to.equal(0);
    expect(mid.api).to.equal('returning');
    // penalty ≈ 1.9 after two falls a few seconds apart: hold ≈ 3 s × 2^0.4 ≈ 4 s.
    expect(second).to.be.at.least(BASE_HOLD_MS);
    expect(second).to.be.above(first + 1000);
    // While held it was answering: the controller said returning, not down.
    const during = states.filter((s) => s.at > thawed + 1500 && s.at < thawed + second - 200);
    expect(during.length).to.be.greaterThan(0);
    expect(during.every((s) => s.state === 'returning')).to.equal(true);
  });

  it('a third fall, with a brief answer while held, never bounces be3 back into the LB', async function () {
    await fall();
    const thawed = Date.now();
    freezeMember(d!.lab, 'agent-be3', false);
    await waitState('returning', 'be3 answering again (returning)');
    await sleep(1500);
    freezeMember(d!.lab, 'agent-be3', true);
    await waitState('down', 'be3 down again');
    const out = watcher!.between(thawed, Date.now());
    expect(out.length).to.be.greaterThan(10);
    expect(out.every((s) => be3Weight(s.weights) === 0)).to.equal(true);
  });

  it('the return after that is held longer still, and be1/be2 were never touched', async function () {
    const third = await rise();
    // Four falls within a minute: penalty ≈ 3.8, hold ≈ 3 s × 2^2.3 ≈ 15 s.
    expect(third).to.be.above(second + 3000);
    const all = watcher!.samples;
    expect(all.length).to.be.greaterThan(100);
    expect(all.every((s) => (s.weights.get('be1') ?? 0) > 0 && (s.weights.get('be2') ?? 0) > 0)).to.equal(
      true,
    );
  });
});
