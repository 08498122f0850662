import { expect } from 'chai';
import { parseSippCounts, sippArgs } from '../../src/lab/sipp.js';

/** Head and last row of a real sipp 3.6.1 `-trace_counts` file (scripts/sipp/uac-admission.xml at 130 %). */
const COUNTS = [
  'CurrentTime;ElapsedTime;0_INVITE_Sent;0_INVITE_Retrans;0_INVITE_Timeout;1_100_Recv;1_100_Retrans;1_100_Timeout;1_100_Unexp;2_180_Recv;2_180_Retrans;2_180_Timeout;2_180_Unexp;3_503_Recv;3_503_Retrans;3_503_Timeout;3_503_Unexp;4_200_Recv;4_200_Retrans;4_200_Timeout;4_200_Unexp;',
  '2026-11-25\t02:32:45.288172\t1795573965.288172;00:00:05:056000;1200;3;0;900;0;0;0;0;0;0;0;300;0;0;0;899;0;0;0;',
  '2026-11-25\t02:32:55.288172\t1795573975.288172;00:00:15:056000;3810;81;0;2799;17;0;0;0;0;0;0;1011;0;0;0;2799;2;0;0;',
].join('\n');

describe('sipp -trace_counts (admission scenario outcomes)', function () {
  it('reads the last row by message column, leaving the time columns out', function () {
    const c = parseSippCounts(COUNTS);
    expect(c['3_503_Recv']).to.equal(1011);
    expect(c['4_200_Recv']).to.equal(2799);
    expect(c['0_INVITE_Sent']).to.equal(3810);
    expect(c).to.not.have.property('CurrentTime');
    expect(c).to.not.have.property('ElapsedTime');
  });

  it('an empty or header-only file gives no counts', function () {
    expect(parseSippCounts('')).to.deep.equal({});
    expect(parseSippCounts(COUNTS.split('\n')[0] ?? '')).to.deep.equal({});
  });

  it('asks sipp for the counts file only when told to', function () {
    const base = { name: 'u', scenario: 's.xml', localIp: '127.8.0.5', localPort: 5060, timeoutS: 5 };
    expect(sippArgs({ ...base, traceCounts: true }, '/tmp/s.csv')).to.include('-trace_counts');
    expect(sippArgs(base, '/tmp/s.csv')).to.not.include('-trace_counts');
  });
});
