import { expect } from 'chai';
import fc from 'fast-check';
import {
  checkFreshness,
  PeerReplayState,
  SequenceWindow,
  WINDOW_SIZE,
  RETIRED_BOOTS,
  type FreshnessLimits,
} from '../../src/heartbeat/replay.js';

const LIMITS: FreshnessLimits = { maxAgeMs: 5000, maxFutureMs: 1000 };
const NOW = 1_700_000_000_000;

describe('heartbeat replay window', function () {
  it('accepts each sequence number at most once, exactly as a reference model says', function () {
    // Model: a seq is accepted iff never accepted before and within WINDOW_SIZE of the highest accepted.
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.nat(300), fc.integer({ min: 0, max: 2 ** 40 })), { maxLength: 400 }),
        (seqs) => {
          const w = new SequenceWindow();
          const seen = new Set<number>();
          let top = -1;
          for (const s of seqs) {
            const expected = !seen.has(s) && (s > top || top - s < WINDOW_SIZE);
            const got = w.fresh(s);
            expect(got, `seq ${s} (top ${top})`).to.equal(expected);
            if (got) {
              w.record(s);
              seen.add(s);
              top = Math.max(top, s);
            }
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('a replayed (boot, seq) is refused; reordering inside the window is not', function () {
    const p = new PeerReplayState();
    expect(p.admit('boot-aaaa', 10, NOW, NOW, LIMITS)).to.equal(null);
    expect(p.admit('boot-aaaa', 12, NOW, NOW, LIMITS)).to.equal(null);
    expect(p.admit('boot-aaaa', 11, NOW, NOW, LIMITS)).to.equal(null);
    expect(p.admit('boot-aaaa', 11, NOW, NOW, LIMITS)).to.equal('replayed');
    expect(p.admit('boot-aaaa', 12, NOW, NOW, LIMITS)).to.equal('replayed');
    expect(p.admit('boot-aaaa', 12 + WINDOW_SIZE, NOW, NOW, LIMITS)).to.equal(null);
    expect(p.admit('boot-aaaa', 12, NOW, NOW, LIMITS)).to.equal('replayed');
  });

  it('future-dated and stale timestamps are refused, at the exact limits', function () {
    expect(checkFreshness(NOW + LIMITS.maxFutureMs, NOW, LIMITS)).to.equal(null);
    expect(checkFreshness(NOW + LIMITS.maxFutureMs + 1, NOW, LIMITS)).to.equal('future_dated');
    expect(checkFreshness(NOW - LIMITS.maxAgeMs, NOW, LIMITS)).to.equal(null);
    expect(checkFreshness(NOW - LIMITS.maxAgeMs - 1, NOW, LIMITS)).to.equal('stale');
    fc.assert(
      fc.property(fc.integer({ min: LIMITS.maxFutureMs + 1, max: 10 ** 12 }), fc.nat(), (ahead, seq) => {
        expect(new PeerReplayState().admit('boot-aaaa', seq, NOW + ahead, NOW, LIMITS)).to.equal(
          'future_dated',
        );
      }),
    );
  });

  it('a new boot id starts a fresh window; the old boot is then refused', function () {
    const p = new PeerReplayState();
    expect(p.admit('boot-old1', 500, NOW, NOW, LIMITS)).to.equal(null);
    expect(p.admit('boot-new1', 0, NOW + 10, NOW + 10, LIMITS)).to.equal(null);
    expect(p.currentBoot).to.equal('boot-new1');
    expect(p.admit('boot-old1', 501, NOW + 10, NOW + 10, LIMITS)).to.equal('replayed');
    expect(p.admit('boot-new1', 1, NOW + 20, NOW + 20, LIMITS)).to.equal(null);
  });

  it('a boot id claiming to start before the current one is stale', function () {
    const p = new PeerReplayState();
    expect(p.admit('boot-cur1', 1, NOW, NOW, LIMITS)).to.equal(null);
    expect(p.admit('boot-xxxx', 1, NOW - 100, NOW, LIMITS)).to.equal('stale');
    expect(p.currentBoot).to.equal('boot-cur1');
  });

  it(`remembers the last ${RETIRED_BOOTS} retired boot ids, no more (bounded memory)`, function () {
    const p = new PeerReplayState();
    for (let i = 0; i <= RETIRED_BOOTS + 1; i++)
      expect(p.admit(`boot-${i}000`, 1, NOW + i, NOW + i, LIMITS)).to.equal(null);
    // boot-0000 has been forgotten; its freshness check is what protects then (and here it is too old: stale).
    expect(p.admit('boot-0000', 2, NOW, NOW + 10, LIMITS)).to.equal('stale');
    expect(p.admit(`boot-${RETIRED_BOOTS}000`, 2, NOW + 10, NOW + 10, LIMITS)).to.equal('replayed');
  });
});
