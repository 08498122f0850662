/**
 * The share law (src/scoring/fair-share.ts) on examples and as properties over random claims:
 * the sum never exceeds the limit, nobody is limited below what it asks when the pool is not
 * saturated, every key gets at least its weighted fair share when it is, guarantees hold, and
 * more demand from one key or less limit never gives another key more.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import {
  MAX_SHARE_EMISSION_US,
  fairShares,
  shareEmissionUs,
  withinDeadband,
  type ShareClaim,
} from '../../src/scoring/fair-share.js';

const claim = (demandCps: number, weight = 1, floorCps = 0): ShareClaim => ({ demandCps, weight, floorCps });
const claims = (entries: Record<string, ShareClaim>) => new Map(Object.entries(entries));
const sum = (m: ReadonlyMap<string, number>) => [...m.values()].reduce((s, x) => s + x, 0);
const EPS = 1e-6;

describe('fair shares of a limit (the law)', () => {
  it('flood + polite: the polite source gets all it asks, the flood the rest', () => {
    const r = fairShares(100, claims({ flood: claim(1000), polite: claim(25), '*': claim(0, 1, 5) }));
    expect(r.saturated).to.equal(true);
    expect(r.shares.get('polite')).to.be.closeTo(25, EPS);
    expect(r.shares.get('*')).to.be.closeTo(5, EPS);
    expect(r.shares.get('flood')).to.be.closeTo(70, EPS);
  });

  it('a lone source gets the whole limit but the reserve for newcomers', () => {
    const r = fairShares(100, claims({ only: claim(400), '*': claim(0, 1, 5) }));
    expect(r.shares.get('only')).to.be.closeTo(95, EPS);
  });

  it('not saturated: everybody gets what it asks plus the spare by weight', () => {
    const r = fairShares(100, claims({ a: claim(30), b: claim(10, 3), '*': claim(0, 1, 5) }));
    expect(r.saturated).to.equal(false);
    // asked 30 + 10 + 5 = 45; spare 55 over weights 1 + 3 + 1
    expect(r.shares.get('a')).to.be.closeTo(41, EPS);
    expect(r.shares.get('b')).to.be.closeTo(43, EPS);
    expect(sum(r.shares)).to.be.closeTo(100, EPS);
  });

  it('weights: two floods share in proportion to their weights', () => {
    const r = fairShares(90, claims({ heavy: claim(1000, 2), light: claim(1000, 1) }));
    expect(r.shares.get('heavy')).to.be.closeTo(60, EPS);
    expect(r.shares.get('light')).to.be.closeTo(30, EPS);
  });

  it('a guarantee holds against any flood; guarantees beyond the limit are scaled down', () => {
    const r = fairShares(100, claims({ trunk: claim(50, 1, 50), f1: claim(500), f2: claim(500) }));
    expect(r.shares.get('trunk')).to.be.closeTo(50, EPS);
    expect(r.shares.get('f1')).to.be.closeTo(25, EPS);
    const over = fairShares(100, claims({ a: claim(300, 1, 150), b: claim(300, 1, 50) }));
    expect(over.shares.get('a')).to.be.closeTo(75, 1e-3);
    expect(over.shares.get('b')).to.be.closeTo(25, 1e-3);
    expect(sum(over.shares)).to.be.at.most(100);
  });

  it('refuses nonsense rather than returning it', () => {
    expect(() => fairShares(0, claims({ a: claim(1) }))).to.throw(RangeError);
    expect(() => fairShares(10, claims({ a: claim(-1) }))).to.throw(/bad demand/);
    expect(() => fairShares(10, claims({ a: claim(1, 0) }))).to.throw(/bad weight/);
    expect(fairShares(10, new Map()).shares.size).to.equal(0);
  });

  const claimArb = fc.record({
    demandCps: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 5000, noNaN: true })),
    weight: fc.double({ min: 0.1, max: 10, noNaN: true }),
    floorCps: fc.oneof(
      { arbitrary: fc.constant(0), weight: 3 },
      { arbitrary: fc.double({ min: 0, max: 200, noNaN: true }), weight: 1 },
    ),
  });
  const claimsArb = fc
    .array(claimArb, { minLength: 1, maxLength: 12 })
    .map((cs) => new Map(cs.map((c, i) => [`k${i}`, c] as const)));
  const limitArb = fc.double({ min: 1, max: 2000, noNaN: true });

  it('property: the shares never sum above the limit, and each is >= 0', () => {
    fc.assert(
      fc.property(limitArb, claimsArb, (limit, cs) => {
        const r = fairShares(limit, cs);
        expect(sum(r.shares)).to.be.at.most(limit * (1 + 1e-9));
        for (const s of r.shares.values()) expect(s).to.be.at.least(0);
      }),
      { numRuns: 500 },
    );
  });

  it('property: not saturated, nobody gets less than it asks; saturated, everybody its fair share', () => {
    fc.assert(
      fc.property(limitArb, claimsArb, (limit, cs) => {
        const r = fairShares(limit, cs);
        const floors = [...cs.values()].reduce((s, c) => s + c.floorCps, 0);
        const scale = floors > limit ? limit / floors : 1;
        const weight = [...cs.values()].reduce((s, c) => s + c.weight, 0);
        for (const [k, c] of cs) {
          const share = r.shares.get(k)!;
          expect(share).to.be.at.least(c.floorCps * scale * (1 - 1e-6));
          if (!r.saturated) expect(share).to.be.at.least(c.demandCps - EPS);
          else {
            const fair = ((limit - floors * scale) * c.weight) / weight;
            expect(share).to.be.at.least(Math.min(c.demandCps, fair) - 1e-6 * limit);
          }
        }
      }),
      { numRuns: 500 },
    );
  });

  it('property: more demand from one key, or a smaller limit, never gives another key more', () => {
    fc.assert(
      fc.property(
        limitArb,
        claimsArb,
        fc.double({ min: 0, max: 5000, noNaN: true }),
        fc.double({ min: 0.1, max: 1, noNaN: true }),
        (limit, cs, more, cut) => {
          const base = fairShares(limit, cs);
          const k0 = cs.get('k0')!;
          const greedier = fairShares(
            limit,
            new Map([...cs, ['k0', { ...k0, demandCps: k0.demandCps + more }]]),
          );
          const smaller = fairShares(limit * cut, cs);
          for (const k of cs.keys()) {
            if (k !== 'k0') expect(greedier.shares.get(k)!).to.be.at.most(base.shares.get(k)! + 1e-6 * limit);
            expect(smaller.shares.get(k)!).to.be.at.most(base.shares.get(k)! + 1e-6 * limit);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('emission intervals: rounded up, bounded; the deadband is relative to what the LB holds', () => {
    expect(shareEmissionUs(3)).to.equal(333_334);
    expect(shareEmissionUs(0)).to.equal(MAX_SHARE_EMISSION_US);
    expect(shareEmissionUs(1e-9)).to.equal(MAX_SHARE_EMISSION_US);
    expect(shareEmissionUs(1e9)).to.equal(1);
    expect(withinDeadband(10_000, 10_900, 0.1)).to.equal(true);
    expect(withinDeadband(10_000, 11_100, 0.1)).to.equal(false);
    expect(withinDeadband(10_000, 8_999, 0.1)).to.equal(false);
    expect(withinDeadband(0, 1, 0.5)).to.equal(false);
  });
});
