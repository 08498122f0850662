import { expect } from 'chai';
import fc from 'fast-check';
import {
  ADMISSION_ALGORITHM,
  AdmissionPipeMissingError,
  AdmissionReplyError,
  NO_LIMIT,
  admissionPipeName,
  parsePipeList,
  pipeLimitChanges,
  pipeLimitFor,
  readPipeLimits,
  setIdOfPipe,
  setPipeLimit,
  type LimitCps,
  type PipeState,
  type RpcCaller,
} from '../../src/kamailio/admission.js';
import { RpcMethodError, type RpcParam } from '../../src/kamailio/rpc.js';

/** pl.list as a real Kamailio 5.6.3 answered it (sipweigh-lb.cfg with SIPWEIGH_ADMISSION_CONTROL, under load). */
const PL_LIST_5_6_3 = [
  {
    name: 'sipweigh_set_1',
    algorithm: 'TAILDROP',
    limit: 185,
    counter: 25,
    last_counter: 254,
    unused_intervals: 0,
  },
];

/** Records calls and answers with a scripted result or error: stands in for the RPC client. */
function fakeRpc(answer: (method: string, params: readonly RpcParam[]) => unknown): RpcCaller & {
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

const state = (name: string, limit: number, algorithm = 'TAILDROP'): PipeState => ({
  name,
  algorithm,
  limit,
  limitCps: limit >= NO_LIMIT ? null : limit,
  counter: 0,
  lastCounter: 0,
});

describe('admission: pipe names', function () {
  it('names the pipe of a set as the LB snippet does, and reads the set back', function () {
    expect(admissionPipeName(1)).to.equal('sipweigh_set_1');
    expect(setIdOfPipe('sipweigh_set_1')).to.equal(1);
    expect(setIdOfPipe('sipweigh_set_0')).to.equal(0);
    fc.assert(fc.property(fc.nat(), (id) => setIdOfPipe(admissionPipeName(id)) === id));
  });

  it('refuses set ids that are not non-negative integers, and ignores other pipes', function () {
    for (const bad of [-1, 1.5, NaN, Infinity]) expect(() => admissionPipeName(bad)).to.throw(RangeError);
    for (const other of ['sipweigh_set_', 'sipweigh_set_01', 'sipweigh_set_1x', 'one', 'sipweigh_set_-1']) {
      expect(setIdOfPipe(other), other).to.equal(undefined);
    }
  });
});

describe('admission: limits', function () {
  it('rounds down to whole calls per second (never admits more than asked), null is no limit', function () {
    expect(pipeLimitFor(185.9)).to.equal(185);
    expect(pipeLimitFor(0)).to.equal(0);
    expect(pipeLimitFor(null)).to.equal(NO_LIMIT);
    expect(pipeLimitFor(5e12)).to.equal(NO_LIMIT);
    expect(pipeLimitFor(Infinity)).to.equal(NO_LIMIT);
  });

  it('refuses negative and non-numbers (Kamailio would store -1 and refuse every call)', function () {
    for (const bad of [-1, -0.5, NaN, '10' as unknown as number, undefined as unknown as number]) {
      expect(() => pipeLimitFor(bad), String(bad)).to.throw(RangeError);
    }
  });

  it('is an integer in 0..NO_LIMIT and never above the rate asked, for any rate', function () {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 2e9, noNaN: true }), (cps) => {
        const l = pipeLimitFor(cps);
        return Number.isInteger(l) && l >= 0 && l <= NO_LIMIT && l <= cps;
      }),
    );
  });
});

describe('admission: pl.list replies', function () {
  it('reads a real 5.6.3 reply', function () {
    expect(parsePipeList(PL_LIST_5_6_3)).to.deep.equal([
      {
        name: 'sipweigh_set_1',
        algorithm: 'TAILDROP',
        limit: 185,
        limitCps: 185,
        counter: 25,
        lastCounter: 254,
      },
    ]);
    expect(parsePipeList([])).to.deep.equal([]);
  });

  it('reports the start-up limit as no limit', function () {
    const [p] = parsePipeList([{ ...PL_LIST_5_6_3[0], limit: NO_LIMIT }]);
    expect(p?.limitCps).to.equal(null);
  });

  it('turns malformed replies into AdmissionReplyError, never a crash', function () {
    const good = PL_LIST_5_6_3[0];
    const bad: unknown[] = [
      null,
      {},
      'PIPE: id=x',
      [null],
      [[]],
      [{ ...good, name: 7 }],
      [{ ...good, name: '' }],
      [{ ...good, algorithm: undefined }],
      [{ ...good, limit: '185' }],
      [{ ...good, limit: 1.5 }],
      [{ ...good, counter: null }],
      [{ ...good, last_counter: undefined }],
    ];
    for (const reply of bad)
      expect(() => parsePipeList(reply), JSON.stringify(reply)).to.throw(AdmissionReplyError);
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        try {
          parsePipeList(v);
        } catch (e) {
          if (!(e instanceof AdmissionReplyError)) throw e;
        }
      }),
    );
  });
});

describe('admission: RPC calls', function () {
  it('setPipeLimit sends pl.set_pipe NAME TAILDROP LIMIT with an integer', async function () {
    const rpc = fakeRpc(() => ({}));
    await setPipeLimit(rpc, 'sipweigh_set_1', 185.7);
    await setPipeLimit(rpc, 'sipweigh_set_1', null);
    expect(rpc.calls).to.deep.equal([
      ['pl.set_pipe', ['sipweigh_set_1', ADMISSION_ALGORITHM, 185]],
      ['pl.set_pipe', ['sipweigh_set_1', ADMISSION_ALGORITHM, NO_LIMIT]],
    ]);
  });

  it('setPipeLimit refuses a bad limit before any call', async function () {
    const rpc = fakeRpc(() => ({}));
    expect(await rejection(setPipeLimit(rpc, 'sipweigh_set_1', -5))).to.be.instanceOf(RangeError);
    expect(rpc.calls).to.have.length(0);
  });

  it('an unknown pipe (admission not enabled on that LB) is an AdmissionPipeMissingError', async function () {
    const rpc = fakeRpc(() => {
      throw new RpcMethodError('pl.set_pipe', 'http://lb/RPC', 400, 'Unknown pipe id sipweigh_set_2');
    });
    const e = await rejection(setPipeLimit(rpc, 'sipweigh_set_2', 10));
    expect(e).to.be.instanceOf(AdmissionPipeMissingError);
    expect((e as AdmissionPipeMissingError).pipe).to.equal('sipweigh_set_2');
  });

  it('other RPC errors pass through unchanged; a reply with content is an AdmissionReplyError', async function () {
    const other = new RpcMethodError('pl.set_pipe', 'http://lb/RPC', 400, 'Unknown algorithm');
    expect(
      await rejection(
        setPipeLimit(
          fakeRpc(() => {
            throw other;
          }),
          'p',
          1,
        ),
      ),
    ).to.equal(other);
    expect(
      await rejection(
        setPipeLimit(
          fakeRpc(() => ['x']),
          'p',
          1,
        ),
      ),
    ).to.be.instanceOf(AdmissionReplyError);
  });

  it('readPipeLimits returns the pipes by name', async function () {
    const pipes = await readPipeLimits(fakeRpc(() => PL_LIST_5_6_3));
    expect([...pipes.keys()]).to.deep.equal(['sipweigh_set_1']);
    expect(await rejection(readPipeLimits(fakeRpc(() => 'garbage')))).to.be.instanceOf(AdmissionReplyError);
  });
});

describe('admission: in-sync check', function () {
  const desired = (entries: Array<[string, LimitCps]>) => new Map(entries);
  const actual = (...pipes: PipeState[]) => new Map(pipes.map((p) => [p.name, p]));

  it('nothing to set when limits and algorithm match (rounding included)', function () {
    const plan = pipeLimitChanges(
      desired([
        ['a', 185.4],
        ['b', null],
      ]),
      actual(state('a', 185), state('b', NO_LIMIT)),
    );
    expect(plan).to.deep.equal({ changes: [], missing: [] });
  });

  it('sets what differs: another limit, another algorithm, a restarted LB back at no limit', function () {
    const plan = pipeLimitChanges(
      desired([
        ['a', 150],
        ['b', 100],
        ['c', 90],
        ['d', null],
      ]),
      actual(
        state('a', 185),
        state('b', 100, 'RED'),
        state('c', NO_LIMIT),
        state('d', 40),
        state('other', 3),
      ),
    );
    expect(plan.changes.map((c) => [c.pipe, c.limit, c.current.limit])).to.deep.equal([
      ['a', 150, 185],
      ['b', 100, 100],
      ['c', 90, NO_LIMIT],
      ['d', NO_LIMIT, 40],
    ]);
    expect(plan.missing).to.deep.equal([]);
  });

  it('reports desired pipes the LB lacks instead of setting them, and leaves other pipes alone', function () {
    const plan = pipeLimitChanges(desired([['sipweigh_set_2', 10]]), actual(state('other', 3)));
    expect(plan).to.deep.equal({ changes: [], missing: ['sipweigh_set_2'] });
  });

  it('after applying the changes, the LB is in sync (property)', function () {
    const limit = fc.oneof(fc.constant(null), fc.double({ min: 0, max: 1e6, noNaN: true }));
    fc.assert(
      fc.property(
        fc.dictionary(fc.constantFrom('a', 'b', 'c'), limit),
        fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd'), fc.nat({ max: 2e6 })),
        (want, have) => {
          const d = new Map(Object.entries(want));
          const now = new Map(Object.entries(have).map(([n, l]) => [n, state(n, l)]));
          const { changes } = pipeLimitChanges(d, now);
          for (const c of changes) now.set(c.pipe, state(c.pipe, c.limit));
          return pipeLimitChanges(d, now).changes.length === 0;
        },
      ),
    );
  });
});
