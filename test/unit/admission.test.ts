import { expect } from 'chai';
import fc from 'fast-check';
import {
  ADMISSION_HTABLE,
  AdmissionLimiterMissingError,
  AdmissionReplyError,
  MAX_LIMIT_CPS,
  MAX_TOLERANCE_US,
  MIN_LIMIT_CPS,
  MIN_TOLERANCE_US,
  admissionLimiterName,
  gcraParamsFor,
  limitCpsOf,
  parseLimiterDump,
  limiterChanges,
  readLimiters,
  setIdOfLimiter,
  setLimiter,
  type GcraParams,
  type LimitCps,
  type LimiterState,
  type AdmissionRpc,
} from '../../src/kamailio/admission.js';
import { RpcMethodError, type RpcParam } from '../../src/kamailio/rpc.js';

/**
 * `htable.dump sipweigh_adm` in the shape Kamailio 5.6.3 answers it (lb.cfg with SW_ADMISSION; probed
 * over JSON-RPC), with the values a 92 calls/s limit gives and a TAT the script wrote.
 */
const DUMP_5_6_3 = [
  { entry: 5, size: 1, slot: [{ name: 'tau_1', value: 108700, type: 'int' }] },
  { entry: 7, size: 1, slot: [{ name: 'T_1', value: 10870, type: 'int' }] },
  { entry: 12, size: 1, slot: [{ name: 'tat_1', value: 1187315022, type: 'int' }] },
];
/** The same table right after start-up (route SIPWEIGH_ADMISSION_INIT). */
const DUMP_START = [
  { entry: 5, size: 1, slot: [{ name: 'tau_1', value: 0, type: 'int' }] },
  { entry: 7, size: 1, slot: [{ name: 'T_1', value: 0, type: 'int' }] },
];
const SET_OK = 'Ok. Key set to new value.';

/** Records calls and answers with a scripted result or error: stands in for the RPC client. */
function fakeRpc(answer: (method: string, params: readonly RpcParam[]) => unknown): AdmissionRpc & {
  calls: Array<[string, readonly RpcParam[]]>;
} {
  const calls: Array<[string, readonly RpcParam[]]> = [];
  return {
    calls,
    call: (method: string, params: readonly RpcParam[] = []) => {
      calls.push([method, params]);
      try {
        return Promise.resolve(answer(method, params));
      } catch (e) {
        return Promise.reject(e as Error);
      }
    },
  };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection');
}

const state = (name: string, params: GcraParams): LimiterState => ({
  name,
  setId: setIdOfLimiter(name) ?? 0,
  params,
  limitCps: limitCpsOf(params.emissionUs),
});

describe('admission: limiter names', function () {
  it('names the limiter of a set as the controller logs it, and reads the set back', function () {
    expect(admissionLimiterName(1)).to.equal('sipweigh_set_1');
    expect(setIdOfLimiter('sipweigh_set_1')).to.equal(1);
    expect(setIdOfLimiter('sipweigh_set_0')).to.equal(0);
    fc.assert(fc.property(fc.nat(), (id) => setIdOfLimiter(admissionLimiterName(id)) === id));
  });

  it('refuses set ids that are not non-negative integers, and ignores other names', function () {
    for (const bad of [-1, 1.5, NaN, Infinity]) expect(() => admissionLimiterName(bad)).to.throw(RangeError);
    for (const other of ['sipweigh_set_', 'sipweigh_set_01', 'sipweigh_set_1x', 'one', 'sipweigh_set_-1']) {
      expect(setIdOfLimiter(other), other).to.equal(undefined);
    }
  });
});

describe('admission: GCRA parameters', function () {
  it('T = 1e6 / limit rounded up; tau = 10 calls within 100 ms..1 s; null is no limit, 0 refuses all', function () {
    expect(gcraParamsFor(92)).to.deep.equal({ emissionUs: 10870, toleranceUs: 108700 });
    expect(gcraParamsFor(185)).to.deep.equal({ emissionUs: 5406, toleranceUs: 100000 });
    expect(gcraParamsFor(10)).to.deep.equal({ emissionUs: 100000, toleranceUs: 1000000 });
    expect(gcraParamsFor(1)).to.deep.equal({ emissionUs: 1000000, toleranceUs: 1000000 });
    expect(gcraParamsFor(null)).to.deep.equal({ emissionUs: 0, toleranceUs: 0 });
    expect(gcraParamsFor(MAX_LIMIT_CPS)).to.deep.equal({ emissionUs: 0, toleranceUs: 0 });
    expect(gcraParamsFor(Infinity)).to.deep.equal({ emissionUs: 0, toleranceUs: 0 });
    expect(gcraParamsFor(0)).to.deep.equal({ emissionUs: -1, toleranceUs: 0 });
    expect(gcraParamsFor(MIN_LIMIT_CPS / 2)).to.deep.equal({ emissionUs: -1, toleranceUs: 0 });
  });

  it('refuses negative and non-numbers (htable.seti would store 0: no limit)', function () {
    for (const bad of [-1, -0.5, NaN, '10' as unknown as number, undefined as unknown as number]) {
      expect(() => gcraParamsFor(bad), String(bad)).to.throw(RangeError);
    }
  });

  it('for any rate: never admits faster than asked, and stays in the 32-bit range the script relies on', function () {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 2e9, noNaN: true }), (cps) => {
        const { emissionUs: t, toleranceUs: tau } = gcraParamsFor(cps);
        if (t === 0) return cps >= MAX_LIMIT_CPS;
        if (t === -1) return cps < MIN_LIMIT_CPS && tau === 0;
        return (
          Number.isInteger(t) &&
          t >= 1 &&
          t <= 1e8 &&
          1e6 / t <= cps &&
          tau >= MIN_TOLERANCE_US &&
          tau <= MAX_TOLERANCE_US &&
          2e9 + tau + t < 2 ** 31
        );
      }),
    );
  });

  it('reads the limit back from T to 3 decimals', function () {
    expect(limitCpsOf(0)).to.equal(null);
    expect(limitCpsOf(-1)).to.equal(0);
    expect(limitCpsOf(100000)).to.equal(10);
    expect(limitCpsOf(10870)).to.equal(91.996);
  });
});

describe('admission: htable.dump replies', function () {
  it('reads a real 5.6.3 reply (the script-owned TAT is ignored) and the start-up state', function () {
    expect(parseLimiterDump(DUMP_5_6_3)).to.deep.equal([
      {
        name: 'sipweigh_set_1',
        setId: 1,
        params: { emissionUs: 10870, toleranceUs: 108700 },
        limitCps: 91.996,
      },
    ]);
    expect(parseLimiterDump(DUMP_START)[0]?.limitCps).to.equal(null);
    expect(parseLimiterDump([])).to.deep.equal([]);
  });

  it('turns malformed replies into AdmissionReplyError, never a crash', function () {
    const bad: unknown[] = [
      null,
      {},
      'T_1=5',
      [null],
      [{ entry: 1 }],
      [{ slot: [null] }],
      [{ slot: [{ value: 3 }] }],
      [{ slot: [{ name: 'T_1', value: 1.5 }] }],
      [{ slot: [{ name: 'T_1', value: null }] }],
      [{ slot: [{ name: 'T_1', value: '10870', type: 'str' }] }],
      [{ slot: [{ name: 'T_1', value: 10870 }] }, { slot: [{ name: 'tau_1', value: 'x', type: 'str' }] }],
    ];
    for (const reply of bad)
      expect(() => parseLimiterDump(reply), JSON.stringify(reply)).to.throw(AdmissionReplyError);
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        try {
          parseLimiterDump(v);
        } catch (e) {
          if (!(e instanceof AdmissionReplyError)) throw e;
        }
      }),
    );
  });
});

describe('admission: RPC calls', function () {
  it('setLimiter writes tau, then T (the switch), with htable.seti; lifting a limit writes T = 0 only', async function () {
    const rpc = fakeRpc(() => SET_OK);
    await setLimiter(rpc, 'sipweigh_set_1', 92);
    await setLimiter(rpc, 'sipweigh_set_1', null);
    await setLimiter(rpc, 'sipweigh_set_1', 0);
    expect(rpc.calls).to.deep.equal([
      ['htable.seti', [ADMISSION_HTABLE, 'tau_1', 108700]],
      ['htable.seti', [ADMISSION_HTABLE, 'T_1', 10870]],
      ['htable.seti', [ADMISSION_HTABLE, 'T_1', 0]],
      ['htable.seti', [ADMISSION_HTABLE, 'tau_1', 0]],
      ['htable.seti', [ADMISSION_HTABLE, 'T_1', -1]],
    ]);
  });

  it('setLimiter refuses a bad limit or a name that is no limiter before any call', async function () {
    const rpc = fakeRpc(() => SET_OK);
    expect(await rejection(setLimiter(rpc, 'sipweigh_set_1', -5))).to.be.instanceOf(RangeError);
    expect(await rejection(setLimiter(rpc, 'p', 5))).to.be.instanceOf(RangeError);
    expect(rpc.calls).to.have.length(0);
  });

  it('an LB without the admission htable gives AdmissionLimiterMissingError on set, no limiters on read', async function () {
    const rpc = fakeRpc(() => {
      throw new RpcMethodError('htable.seti', 'http://lb/RPC', 500, 'No such htable');
    });
    const e = await rejection(setLimiter(rpc, 'sipweigh_set_2', 10));
    expect(e).to.be.instanceOf(AdmissionLimiterMissingError);
    expect((e as AdmissionLimiterMissingError).limiter).to.equal('sipweigh_set_2');
    expect((await readLimiters(rpc)).size).to.equal(0);
  });

  it('other RPC errors pass through unchanged; an unexpected reply is an AdmissionReplyError', async function () {
    const other = new RpcMethodError('htable.seti', 'http://lb/RPC', 500, 'Failed to set the item');
    const failing = fakeRpc(() => {
      throw other;
    });
    expect(await rejection(setLimiter(failing, 'sipweigh_set_1', 1))).to.equal(other);
    expect(await rejection(readLimiters(failing))).to.equal(other);
    expect(
      await rejection(
        setLimiter(
          fakeRpc(() => ({})),
          'sipweigh_set_1',
          1,
        ),
      ),
    ).to.be.instanceOf(AdmissionReplyError);
  });

  it('readLimiters dumps the htable and returns the limiters by name', async function () {
    const rpc = fakeRpc(() => DUMP_5_6_3);
    const limiters = await readLimiters(rpc);
    expect(rpc.calls).to.deep.equal([['htable.dump', [ADMISSION_HTABLE]]]);
    expect([...limiters.keys()]).to.deep.equal(['sipweigh_set_1']);
    expect(await rejection(readLimiters(fakeRpc(() => 'garbage')))).to.be.instanceOf(AdmissionReplyError);
  });
});

describe('admission: in-sync check', function () {
  const desired = (entries: Array<[string, LimitCps]>) => new Map(entries);
  const actual = (...limiters: LimiterState[]) => new Map(limiters.map((p) => [p.name, p]));

  it('nothing to set when T and tau match (closed and unlimited ignore tau)', function () {
    const plan = limiterChanges(
      desired([
        ['sipweigh_set_1', 92],
        ['sipweigh_set_2', null],
        ['sipweigh_set_3', 0],
      ]),
      actual(
        state('sipweigh_set_1', { emissionUs: 10870, toleranceUs: 108700 }),
        state('sipweigh_set_2', { emissionUs: 0, toleranceUs: 5 }),
        state('sipweigh_set_3', { emissionUs: -1, toleranceUs: 7 }),
      ),
    );
    expect(plan).to.deep.equal({ changes: [], missing: [] });
  });

  it('sets what differs: another T, another tau, a restarted LB back at no limit', function () {
    const plan = limiterChanges(
      desired([
        ['a', 150],
        ['b', 92],
        ['c', 90],
        ['d', null],
      ]),
      actual(
        state('a', gcraParamsFor(185)),
        state('b', { emissionUs: 10870, toleranceUs: 50000 }),
        state('c', gcraParamsFor(null)),
        state('d', gcraParamsFor(40)),
        state('other', gcraParamsFor(3)),
      ),
    );
    expect(
      plan.changes.map((c) => [c.limiter, c.params.emissionUs, c.current.params.emissionUs]),
    ).to.deep.equal([
      ['a', 6667, 5406],
      ['b', 10870, 10870],
      ['c', 11112, 0],
      ['d', 0, 25000],
    ]);
    expect(plan.missing).to.deep.equal([]);
  });

  it('reports desired limiters the LB lacks instead of setting them, and leaves others alone', function () {
    const plan = limiterChanges(desired([['sipweigh_set_2', 10]]), actual(state('other', gcraParamsFor(3))));
    expect(plan).to.deep.equal({ changes: [], missing: ['sipweigh_set_2'] });
  });

  it('after applying the changes, the LB is in sync (property)', function () {
    const limit = fc.oneof(fc.constant(null), fc.double({ min: 0, max: 2e6, noNaN: true }));
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom('a', 'b', 'c'), limit),
        fc.dictionary(
          fc.constantFrom('a', 'b', 'c', 'd'),
          fc.tuple(fc.integer({ min: -1, max: 1e8 }), fc.nat(1e6)),
        ),
        (want, have) => {
          const d = new Map(Object.entries(want));
          const now = new Map(
            Object.entries(have).map(([n, [t, tau]]) => [n, state(n, { emissionUs: t, toleranceUs: tau })]),
          );
          const { changes } = limiterChanges(d, now);
          for (const c of changes) now.set(c.limiter, state(c.limiter, c.params));
          return limiterChanges(d, now).changes.length === 0;
        },
      ),
    );
  });
});
