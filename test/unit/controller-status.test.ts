import { expect } from 'chai';
import { formatStatus, type ControllerStatus } from '../../src/controller/status.js';

const status = (mode: 'scored' | 'panic' | 'waiting', blocked: string | null = null): ControllerStatus => ({
  version: 1,
  at: '2026-11-25T03:00:00.000Z',
  pid: 42,
  started_at: '2026-11-25T02:59:00.000Z',
  sets: [
    {
      id: 1,
      mode,
      panic: mode === 'panic' ? { healthy: 0, counted: 3, since_ms_ago: 4200 } : null,
      pool_cps: 350,
      admission_limit_cps: 332.5,
      backends: [
        {
          id: 'be1',
          uri: 'sip:127.0.0.11:5060',
          source: 'config',
          health: mode === 'panic' ? 'down' : 'up',
          weight: 25,
          phase: 'normal',
          factor: 1,
          pressure: 0.12,
          dominant: 'options_rtt_ms',
          capacity_cps: 50,
          effective_cps: 50,
          rtt_ms: 0.4,
          report_age_ms: 120,
        },
      ],
    },
  ],
  lb_nodes: [
    {
      name: 'lb1',
      target: 'http://127.0.0.10:5071/RPC (file:/tmp/ds.list)',
      blocked,
      phase: 'idle',
      consecutive_failures: 0,
      last_success: '2026-11-25T02:59:59.000Z',
      last_result: 'in_sync',
    },
  ],
  schedules: [],
});

describe('controller status (what `sipweigh status` prints)', function () {
  it('shows a set’s mode, pool and limit, and one line per backend with weight, phase and signal', function () {
    const text = formatStatus(status('scored'));
    expect(text).to.contain('set 1: scored; pool 350 calls/s, admission limit 332.5');
    expect(text).to.match(/be1\s+up\s+25 normal\s+1\s+0\.12 options_rtt_ms/);
    expect(text).to.match(/lb1: idle; last in_sync; failures in a row 0/);
  });

  it('says PANIC with the counts and that the last weights are kept', function () {
    expect(formatStatus(status('panic'))).to.contain(
      'set 1: PANIC (0/3 answering, for 4 s): last weights kept',
    );
  });

  it('says when an LB node is not pushed to, and why', function () {
    expect(formatStatus(status('scored', 'its dispatcher list has sets not in this config (7)'))).to.contain(
      'lb1: NOT PUSHED: its dispatcher list has sets not in this config (7)',
    );
  });
});
