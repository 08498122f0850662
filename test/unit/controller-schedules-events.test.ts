/**
 * Facts of the calendar and the API reach the log only through typed events: a failing scheduled
 * job is told through `failed` (schedule_failed), and event-log.ts words both new events.
 */
import { expect } from 'chai';
import { logLineOf } from '../../src/controller/event-log.js';
import { CronSchedules } from '../../src/controller/schedules.js';
import { silentLogger } from '../../src/util/logger.js';

describe('scheduled job failures and API errors are events', function () {
  this.timeout(10_000);

  it('a job that throws is handed to `failed` with its name and error, and kept as its lastError', async function () {
    const failed: { job: string; error: string }[] = [];
    const schedules = new CronSchedules(
      [{ name: 'drain be1', expression: '* * * * * *', action: { kind: 'drain', backend: 'be1' } }],
      () => Promise.reject(new Error('no backend be1')),
      silentLogger,
      (job, error) => failed.push({ job, error }),
    );
    try {
      await schedules.start();
      const deadline = Date.now() + 5000;
      while (failed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    } finally {
      await schedules.stop();
    }
    expect(failed[0]).to.deep.equal({ job: 'drain be1', error: 'no backend be1' });
    expect(schedules.status()[0]!.lastError).to.equal('no backend be1');
  });

  it('event-log words schedule_failed and both kinds of api_error', function () {
    expect(logLineOf({ type: 'schedule_failed', job: 'reconcile', error: 'x' })).to.deep.equal({
      level: 'warn',
      fields: { job: 'reconcile', err: 'x' },
      msg: 'scheduled job failed',
    });
    const handler = logLineOf({
      type: 'api_error',
      stage: 'handler',
      error: 'bug',
      method: 'GET',
      url: '/x',
    });
    expect(handler).to.deep.include({ level: 'error', msg: 'API handler failed' });
    expect(handler!.fields).to.deep.equal({ err: 'bug', url: '/x', method: 'GET' });
    const server = logLineOf({
      type: 'api_error',
      stage: 'server',
      error: 'EMFILE',
      method: null,
      url: null,
    });
    expect(server).to.deep.include({ level: 'error', msg: 'API server error' });
  });
});
