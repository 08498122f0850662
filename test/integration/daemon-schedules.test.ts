/**
 * Maintenance schedules through the daemons (lab on 127.30.x.x): `sipweigh controller` with a
 * `schedules.maintenance` entry that drains be2 at seconds 0 and 30 of every minute and undrains
 * it 10 s later. Seen from outside: the API says be2 is drained by schedule and the LB lists it
 * disabled (D: the LB's own probing never brings it back); then the undrain brings it back, with
 * slow start. `schedules.timezone` is used for the expressions (the API's next run of a 03:00 job
 * is 03:00 in that zone), and an unknown zone is refused by `sipweigh validate` and by
 * `sipweigh controller`, naming the field.
 */
import { expect } from 'chai';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { sipweigh } from '../support/cli.js';
import { startDaemonLab, type ControllerYaml, type DaemonLab } from '../support/daemon-lab.js';
import { eventually, sleep } from '../support/harness.js';
import { sample, waitReady } from './api-support.js';

interface JobStatus {
  readonly name: string;
  readonly expression: string;
  readonly nextRun: string | null;
  readonly lastRun: string | null;
  readonly lastError: string | null;
}

const DRAIN = '0,30 * * * * *';
const UNDRAIN = '10,40 * * * * *';
const TIMEZONE = 'Asia/Kolkata'; // UTC+05:30 all year: 03:00 there is 21:30 UTC

describe('maintenance schedules through the daemons (real lab on 127.30.x.x)', function () {
  this.timeout(240000);
  let d: DaemonLab | undefined;
  let cfg: ControllerYaml;

  const jobs = async () => (await d!.status<{ schedules: JobStatus[] }>()).schedules;

  before(async function () {
    d = await startDaemonLab({ backends: 2, net: 30 });
    cfg = d.labConfig();
    cfg.schedules = {
      reconcile: '*/5 * * * * *',
      timezone: TIMEZONE,
      maintenance: [
        { backend: 'be2', drain: DRAIN, undrain: UNDRAIN },
        // Never reached during the test: only its next run is read, to see the time zone applied.
        { backend: 'be1', drain: '0 0 3 * * *' },
      ],
    };
    d.startController(cfg);
    await waitReady(d.base);
  });

  after(async function () {
    await d?.stop();
  });

  it('lists every job with its expression and a next run, in the API', async function () {
    const list = await jobs();
    expect(list.map((j) => [j.name, j.expression])).to.deep.equal([
      ['reconcile', '*/5 * * * * *'],
      ['drain be2', DRAIN],
      ['undrain be2', UNDRAIN],
      ['drain be1', '0 0 3 * * *'],
    ]);
    for (const j of list) expect(j.nextRun, j.name).to.be.a('string');
  });

  it('runs the expressions in schedules.timezone: 03:00 in Asia/Kolkata is 21:30 UTC', async function () {
    const next = (await jobs()).find((j) => j.name === 'drain be1')!.nextRun!;
    const at = new Date(next);
    expect([at.getUTCHours(), at.getUTCMinutes(), at.getUTCSeconds()]).to.deep.equal([21, 30, 0]);
    expect(at.getTime() - Date.now()).to.be.within(0, 24 * 3600 * 1000);
  });

  it('drains be2 on schedule: the API says drained, the LB lists it disabled, be1 keeps its weight', async function () {
    await eventually(
      async () =>
        ((await d!.lbWeights())?.get('be2') ?? 0) > 0 && ((await d!.lbWeights())?.get('be1') ?? 0) > 0,
      'both backends in rotation at the LB',
      60000,
    );
    const drained = await eventually(
      async () => {
        const b = await d!.backend('be2');
        return b?.drained === true ? b : null;
      },
      'the scheduled drain of be2',
      40000,
      200,
    );
    expect(drained).to.deep.include({ state: 'draining', drain_cause: 'operator' });
    await eventually(async () => (await d!.lbWeights())?.get('be2') === 0, 'be2 inactive at the LB', 10000);
    expect((await d!.lbWeights())?.get('be1')).to.be.greaterThan(0);
    const targets = await d!.lbTargets();
    expect(targets.find((t) => t.duid === 'be2')?.state).to.equal('disabled');
    const m = await d!.metrics();
    expect(sample(m, 'sipweigh_backend_drained', { backend: 'be2' })?.value).to.equal(1);
    expect(sample(m, 'sipweigh_backend_drained', { backend: 'be1' })?.value).to.equal(0);
    const job = (await jobs()).find((j) => j.name === 'drain be2')!;
    expect(job.lastRun).to.be.a('string');
    expect(job.lastError).to.equal(null);
  });

  it('undrains be2 on schedule: back in rotation at the LB through slow start', async function () {
    const seen: number[] = [];
    await eventually(
      async () => {
        const w = (await d!.lbWeights())?.get('be2') ?? 0;
        if (w > 0) seen.push(w);
        return w > 0;
      },
      'be2 back in rotation after the scheduled undrain',
      40000,
      100,
    );
    // Slow start: it came back below its share (be1 and be2 have the same capacity, so 100).
    expect(seen[0]).to.be.lessThan(100);
    const b = await d!.backend('be2');
    expect(b).to.deep.include({ drained: false, state: 'up' });
    expect(b!.score?.phase).to.equal('slow_start');
    expect((await jobs()).find((j) => j.name === 'undrain be2')!.lastRun).to.be.a('string');
    const m = await d!.metrics();
    expect(sample(m, 'sipweigh_backend_drained', { backend: 'be2' })?.value).to.equal(0);
  });

  it('drains again at the next turn (the job repeats)', async function () {
    const first = (await jobs()).find((j) => j.name === 'drain be2')!.lastRun!;
    await eventually(
      async () => (await jobs()).find((j) => j.name === 'drain be2')!.lastRun !== first,
      'the next turn of the drain job',
      45000,
      250,
    );
    await eventually(async () => (await d!.lbWeights())?.get('be2') === 0, 'be2 inactive again', 10000);
  });

  it('an unknown time zone is refused by `sipweigh validate` and by `sipweigh controller`, naming the field', async function () {
    const bad = { ...cfg, schedules: { ...cfg.schedules, timezone: 'Mars/Olympus_Mons' } };
    const file = join(d!.lab.state.dir, 'controller-bad-tz.yaml');
    writeFileSync(file, stringify(bad), { mode: 0o600 });
    const v = sipweigh('validate', file);
    expect(v.code).to.equal(3);
    expect(v.err).to.match(/schedules\.timezone: unknown time zone Mars\/Olympus_Mons/);
    const c = sipweigh('controller', '--config', file);
    expect(c.code).to.equal(3);
    expect(c.err).to.match(/schedules\.timezone: unknown time zone/);
    // The running controller was not disturbed by either.
    await sleep(200);
    expect((await d!.backends()).map((b) => b.id).sort()).to.deep.equal(['be1', 'be2']);
  });
});
