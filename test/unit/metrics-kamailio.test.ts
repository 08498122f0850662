/**
 * Kamailio statistics as the agent reads them: real JSON-RPC replies and kamcmd output captured from
 * Kamailio 5.6.3 (test/fixtures/kamailio-replies), the rate tracker, and malformed replies.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/harness.js';
import {
  kamailioCounters,
  parseDialogsActive,
  parseFetchn,
  parseTmCurrent,
} from '../../src/metrics/kamailio-stats.js';
import { KamcmdRpcError, parseKamcmdStruct } from '../../src/metrics/kamcmd-output.js';
import { kamailioMeasurements } from '../../src/metrics/kamailio-collector.js';
import { KamailioRateTracker } from '../../src/metrics/kamailio-rate-tracker.js';
import { MetricsParseError } from '../../src/metrics/parse-error.js';

const fixture = (name: string) =>
  readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'kamailio-replies', name), 'utf8');
const rpcResult = (name: string): unknown => (JSON.parse(fixture(name)) as { result: unknown }).result;
const ok = (value: unknown): PromiseSettledResult<unknown> => ({ status: 'fulfilled', value });
const failed = (reason: unknown): PromiseSettledResult<unknown> => ({ status: 'rejected', reason });

/** A stats.fetchn result with the given counters changed. */
function fetchnWith(changes: Record<string, number>): Record<string, number> {
  return { ...(rpcResult('stats.fetchn.json') as Record<string, number>), ...changes };
}

describe('metrics: Kamailio statistics over JSON-RPC', function () {
  it('reads tm.stats current and dlg.stats_active all from real replies', function () {
    expect(parseTmCurrent(rpcResult('tm.stats.json'))).to.equal(0);
    expect(parseDialogsActive(rpcResult('dlg.stats_active.json'))).to.equal(0);
    expect(parseTmCurrent({ current: 17, waiting: 3 })).to.equal(17);
  });

  it('counts SIP requests from the per-method counters, not core.rcv_requests (which includes HTTP)', function () {
    // The captured reply: 3 SIP requests (OPTIONS, INVITE, MESSAGE) and 211 HTTP RPC calls.
    const stats = parseFetchn(rpcResult('stats.fetchn.json'));
    expect(stats.get('core.rcv_requests')).to.equal(214);
    const c = kamailioCounters(stats);
    expect(c.sipRequests).to.equal(3);
    // A stateless 500 is in sl.500_replies, the 503 in sl.5xx_replies (one of the two 500s is an HTTP reply).
    expect(c.replies5xx).to.equal(2 + 1 + 0);
    expect(c.activeDialogs).to.equal(0);
  });

  it('adds tm 5xx transactions to the stateless 5xx replies', function () {
    const c = kamailioCounters(
      parseFetchn(fetchnWith({ 'tmx.5xx_transactions': 10, 'sl.500_replies': 1, 'sl.5xx_replies': 2 })),
    );
    expect(c.replies5xx).to.equal(13);
  });

  it('rejects replies of the wrong shape with the method named', function () {
    expect(() => parseTmCurrent({ waiting: 0 })).to.throw(MetricsParseError, 'tm.stats');
    expect(() => parseTmCurrent({ current: '3' })).to.throw(MetricsParseError, 'current');
    expect(() => parseTmCurrent([1])).to.throw(MetricsParseError, 'not an object');
    expect(() => parseDialogsActive({ all: -1 })).to.throw(MetricsParseError, 'dlg.stats_active');
    // stats.fetch (not fetchn) returns strings: refuse rather than guess.
    expect(() => parseFetchn({ 'core.rcv_requests': '12' })).to.throw(MetricsParseError, 'expected a number');
    expect(() => parseFetchn(null)).to.throw(MetricsParseError);
    expect(() => kamailioCounters(parseFetchn({ 'sl.500_replies': 0 }))).to.throw(
      MetricsParseError,
      'rcv_requests',
    );
    expect(() =>
      kamailioCounters(
        parseFetchn({ 'core.rcv_requests_invite': 1, 'sl.500_replies': 0, 'sl.5xx_replies': 0 }),
      ),
    ).to.throw(MetricsParseError, 'tmx.5xx_transactions');
  });
});

describe('metrics: Kamailio replies to measurements', function () {
  it('first reading gives gauges only; the second gives rates from the counter deltas', function () {
    const rates = new KamailioRateTracker();
    const first = kamailioMeasurements(
      { tmStats: ok({ current: 5 }), dlgStats: ok({ all: 2 }), fetchn: ok(fetchnWith({})) },
      rates,
      1000,
    );
    expect(first.values).to.deep.equal({ tm_current: 5, dialogs_active: 2 });
    expect(first.problems.join()).to.include('first counter reading');
    const second = kamailioMeasurements(
      {
        tmStats: ok({ current: 7 }),
        dlgStats: ok({ all: 3 }),
        fetchn: ok(
          fetchnWith({
            'core.rcv_requests_invite': 1 + 50,
            'core.rcv_requests_bye': 30,
            'tmx.5xx_transactions': 4,
          }),
        ),
      },
      rates,
      1500,
    );
    // 80 more requests and 4 more 5xx in 0.5 s.
    expect(second.values).to.deep.equal({ tm_current: 7, dialogs_active: 3, req_rate: 160, err5xx_rate: 8 });
    expect(second.problems).to.deep.equal([]);
  });

  it('each reply fails alone; dialogs fall back to dialog.active_dialogs', function () {
    const rates = new KamailioRateTracker();
    const r = kamailioMeasurements(
      {
        tmStats: failed(new Error('deadline')),
        dlgStats: failed(new Error('Method Not Found')),
        fetchn: ok(fetchnWith({ 'dialog.active_dialogs': 9 })),
      },
      rates,
      1000,
    );
    expect(r.values).to.deep.equal({ dialogs_active: 9 });
    expect(r.problems.join('|'))
      .to.include('tm.stats: deadline')
      .and.include('dlg.stats_active: Method Not Found');
  });

  it('a failed counter reading resets the rates (no rate across an unseen gap)', function () {
    const rates = new KamailioRateTracker();
    const read = (fetchn: PromiseSettledResult<unknown>, at: number) =>
      kamailioMeasurements({ tmStats: ok({ current: 0 }), dlgStats: ok({ all: 0 }), fetchn }, rates, at)
        .values;
    read(ok(fetchnWith({})), 1000);
    expect(read(failed(new Error('refused')), 2000)).to.not.have.property('req_rate');
    expect(read(ok(fetchnWith({ 'core.rcv_requests_invite': 500 })), 3000)).to.not.have.property('req_rate');
    expect(read(ok(fetchnWith({ 'core.rcv_requests_invite': 600 })), 4000)).to.have.property('req_rate', 100);
  });

  it('a restarted Kamailio (counters back to zero) gives no rate for that interval', function () {
    const rates = new KamailioRateTracker();
    const read = (invites: number, at: number) =>
      kamailioMeasurements(
        {
          tmStats: ok({ current: 0 }),
          dlgStats: ok({ all: 0 }),
          fetchn: ok(fetchnWith({ 'core.rcv_requests_invite': invites })),
        },
        rates,
        at,
      ).values;
    read(1000, 0);
    expect(read(10, 1000)).to.not.have.property('req_rate');
    expect(read(20, 2000)).to.have.property('req_rate', 10);
  });
});

describe('metrics: kamcmd output', function () {
  it('parses real kamcmd structs into the same shapes as JSON-RPC', function () {
    const tm = parseKamcmdStruct(fixture('kamcmd-tm.stats.txt'), 'tm.stats');
    expect(tm).to.deep.equal(rpcResult('tm.stats.json'));
    const dlg = parseKamcmdStruct(fixture('kamcmd-dlg.stats_active.txt'), 'dlg.stats_active');
    expect(parseDialogsActive(dlg)).to.equal(0);
    const stats = parseKamcmdStruct(fixture('kamcmd-stats.fetchn.txt'), 'stats.fetchn');
    expect(kamailioCounters(parseFetchn(stats)).sipRequests).to.be.a('number');
    expect(Object.keys(stats)).to.include('tmx.5xx_transactions');
  });

  it('keeps non-numeric values as strings (core.uptime)', function () {
    const up = parseKamcmdStruct(fixture('kamcmd-core.uptime.txt'), 'core.uptime');
    expect(up.uptime).to.be.a('number');
    expect(up.now)
      .to.be.a('string')
      .and.match(/\d{4}$/);
  });

  it('turns kamcmd\'s "error: 500 - ..." (printed with exit status 0) into an error', function () {
    expect(() => parseKamcmdStruct(fixture('kamcmd-error.txt'), 'no.such'))
      .to.throw(KamcmdRpcError)
      .with.property('code', 500);
  });

  it('rejects output that is not a flat struct', function () {
    for (const text of [
      '',
      'kamailio 5.6.3 (x86_64/linux)\n',
      '{\n\tcurrent: 0\n',
      '{\n\tnested: {\n\t\ta: 1\n\t}\n}\n',
      '{\n\tno colon here\n}\n',
    ]) {
      expect(() => parseKamcmdStruct(text, 'x'), JSON.stringify(text)).to.throw(MetricsParseError);
    }
  });
});
