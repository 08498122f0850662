/**
 * SourceLink's rounds against an in-memory stand-in for the LB's htable RPCs: what it writes,
 * that it writes only changes, that the groups file is written and reloaded once, that turning
 * fairness off removes its entries, and that a failing RPC is an outcome (never a throw) that
 * leaves the LB on what it had. The real LB is exercised by test/integration/daemon-fair-admission.
 */
import { expect } from 'chai';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ControllerConfig, FairnessConfig, LbNodeConfig } from '../../src/config/types.js';
import type { ControllerEvent } from '../../src/controller/events.js';
import { FairAdmission } from '../../src/controller/fair-admission.js';
import { RpcMethodError } from '../../src/kamailio/rpc.js';
import { SourceLink, type SourceSettings } from '../../src/push/source-link.js';
import { LocalListFile } from '../../src/push/transports/local-file.js';

class FakeLb {
  readonly table = new Map<string, number>();
  readonly calls: string[] = [];
  failing: string | null = null;
  hasTable = true;

  async call(method: string, params: readonly unknown[] = []): Promise<unknown> {
    this.calls.push(
      method === 'htable.seti' || method === 'htable.delete' ? `${method} ${String(params[1])}` : method,
    );
    if (this.failing === method) throw new Error(`${method}: connection refused`);
    if (!this.hasTable && method.startsWith('htable.'))
      throw new RpcMethodError(method, 'lb', 500, 'No such htable');
    switch (method) {
      case 'htable.dump':
        return [
          {
            entry: 0,
            size: this.table.size,
            slot: [...this.table].map(([name, value]) => ({ name, value, type: 'int' })),
          },
        ];
      case 'htable.seti':
        this.table.set(String(params[1]), Number(params[2]));
        return 'Ok. Key set to new value.';
      case 'htable.delete':
        this.table.delete(String(params[1]));
        return null;
      case 'permissions.addressReload':
        return null;
      default:
        throw new Error(`unexpected ${method}`);
    }
  }

  offer(set: number, key: string, offered: number, refused = 0): void {
    this.table.set(`off::${set}::${key}`, (this.table.get(`off::${set}::${key}`) ?? 0) + offered);
    this.table.set(`adm::${set}::${key}`, (this.table.get(`adm::${set}::${key}`) ?? 0) + offered - refused);
    this.table.set(`ref::${set}::${key}`, (this.table.get(`ref::${set}::${key}`) ?? 0) + refused);
  }

  writes(): string[] {
    const w = this.calls.filter((c) => c.startsWith('htable.seti') || c.startsWith('htable.delete'));
    this.calls.length = 0;
    return w;
  }
}

const fairness = (over: Partial<FairnessConfig> = {}): FairnessConfig => ({
  enabled: true,
  top_n: 10,
  other_reserve: 0.05,
  deadband: 0.1,
  groups: [],
  ...over,
});
const node = { name: 'lb1' } as LbNodeConfig;
const settings = (f = fairness()): SourceSettings => ({
  fairness: f,
  limits: new Map([[1, 100]]),
  fraction: 1,
});

describe("SourceLink: one LB node's fair admission rounds", () => {
  it('writes the shares of a saturated set, then only what moved; refreshes all every 30 s', async () => {
    const lb = new FakeLb();
    const link = new SourceLink(node, lb, null);
    expect((await link.tick(settings(), 0))?.step).to.deep.equal({ kind: 'ok' });
    // No source yet: nobody to be fair to, no shares (the set's limiter alone).
    expect(lb.writes()).to.deep.equal([]);
    lb.offer(1, 'flood', 1000, 900);
    lb.offer(1, 'polite', 20);
    await link.tick(settings(), 1000);
    // Two sources, saturated: the tolerance, their shares, and the other bucket sure of its reserve
    // only (5 % of 100/s): newcomers get the spare through the set's limiter.
    expect(lb.writes()).to.have.members([
      'htable.seti Gtau::1',
      'htable.seti G::1::flood',
      'htable.seti G::1::polite',
      'htable.seti G::1::*',
    ]);
    expect(lb.table.get('G::1::*')).to.equal(200_000);
    expect(lb.table.get('G::1::polite')).to.equal(40_000);
    lb.offer(1, 'flood', 1000, 900);
    lb.offer(1, 'polite', 20);
    await link.tick(settings(), 2000);
    expect(lb.writes()).to.deep.equal([]);
    expect(link.sources().shares.get(1)?.limited).to.deep.equal(['flood']);
    lb.offer(1, 'flood', 1000, 900);
    lb.offer(1, 'polite', 20);
    await link.tick(settings(), 32_000);
    expect(lb.writes()).to.have.length(4);
    const report = link.sources();
    expect(report.totals.get(1)?.get('flood')).to.deep.equal({ offered: 3000, admitted: 300, refused: 2700 });
  });

  it('fairness off removes every entry it wrote (the LB is back on its single limit)', async () => {
    const lb = new FakeLb();
    const link = new SourceLink(node, lb, null);
    await link.tick(settings(), 0);
    lb.offer(1, 'a', 50);
    lb.offer(1, 'b', 50);
    await link.tick(settings(), 1000);
    expect(lb.table.has('G::1::a')).to.equal(true);
    await link.tick(settings(fairness({ enabled: false })), 2000);
    expect([...lb.table.keys()].filter((k) => k.startsWith('G'))).to.deep.equal([]);
  });

  it('a failing RPC is an outcome, never a throw, and leaves the LB as it was', async () => {
    const lb = new FakeLb();
    const link = new SourceLink(node, lb, null);
    await link.tick(settings(), 0);
    lb.offer(1, 'a', 50);
    lb.offer(1, 'b', 50);
    await link.tick(settings(), 1000);
    const before = new Map(lb.table);
    lb.failing = 'htable.dump';
    lb.offer(1, 'a', 500);
    expect((await link.tick(settings(), 2000))?.step).to.include({ kind: 'failed', stage: 'read' });
    lb.failing = 'htable.seti';
    const t = await link.tick(settings(), 3000);
    expect(t?.step).to.include({ kind: 'failed', stage: 'write' });
    for (const [k, v] of before) if (k.startsWith('G')) expect(lb.table.get(k), k).to.equal(v);
    lb.failing = null;
    expect((await link.tick(settings(), 4000))?.step).to.deep.equal({ kind: 'ok' });
    lb.hasTable = false;
    expect((await link.tick(settings(), 5000))?.step).to.deep.equal({ kind: 'missing' });
  });

  it('reads failing (an LB under a flood): the last shares are still written again when their refresh is due', async () => {
    const lb = new FakeLb();
    const link = new SourceLink(node, lb, null);
    await link.tick(settings(), 0);
    lb.offer(1, 'flood', 1000, 900);
    lb.offer(1, 'polite', 20);
    await link.tick(settings(), 1000);
    const written = new Map([...lb.table].filter(([k]) => k.startsWith('G')));
    lb.writes();
    lb.failing = 'htable.dump';
    expect((await link.tick(settings(), 10_000))?.step).to.include({ kind: 'failed', stage: 'read' });
    expect(lb.writes(), 'not due yet').to.deep.equal([]);
    expect((await link.tick(settings(), 31_000))?.step).to.include({ kind: 'failed', stage: 'read' });
    expect(lb.writes()).to.have.members([
      'htable.seti Gtau::1',
      'htable.seti G::1::flood',
      'htable.seti G::1::polite',
      'htable.seti G::1::*',
    ]);
    for (const [k, v] of written) expect(lb.table.get(k), k).to.equal(v);
    await link.tick(settings(), 32_000);
    expect(lb.writes(), 'once per refresh').to.deep.equal([]);
  });

  it('writes the groups file and reloads it once per change; a failed reload is tried again', async () => {
    const lb = new FakeLb();
    const file = join(mkdtempSync(join(tmpdir(), 'sipweigh-groups-')), 'sources.list');
    const link = new SourceLink(node, lb, new LocalListFile({ path: file }));
    const groups = [
      { name: 'trunk', networks: ['10.1.0.0/16'], weight: 1, guaranteed_cps: 0, trusted: true },
    ];
    lb.failing = 'permissions.addressReload';
    const failed = await link.tick(settings(fairness({ groups })), 0);
    expect(failed?.step).to.include({ kind: 'failed', stage: 'groups' });
    lb.failing = null;
    const t = await link.tick(settings(fairness({ groups })), 1000);
    expect(t?.groupsLoaded).to.deep.equal({ groups: 1, networks: 1 });
    expect(readFileSync(file, 'utf8')).to.match(/^1 10\.1\.0\.0 16 0 trusted$/m);
    lb.calls.length = 0;
    expect((await link.tick(settings(fairness({ groups })), 2000))?.groupsLoaded).to.equal(null);
    expect(lb.calls).to.not.include('permissions.addressReload');
    await link.close();
  });

  it('FairAdmission: a failure or a missing table is told once, counted every time; limits from the plan', async () => {
    const lb = new FakeLb();
    const events: ControllerEvent[] = [];
    const config = { admission: { enabled: true, headroom: 0.92, fairness: fairness() } } as ControllerConfig;
    const fair = new FairAdmission(
      [new SourceLink(node, lb, null)],
      () => config,
      (e) => events.push(e),
    );
    fair.setLimits(
      new Map([['lb1', { admission: { kind: 'limits', limits: new Map([[1, 100]]) }, fraction: 1 }]]),
    );
    await fair.tick(0);
    lb.offer(1, 'flood', 1000, 900);
    lb.offer(1, 'polite', 20);
    await fair.tick(1000);
    expect(events.map((e) => e.type)).to.deep.equal(['source_limited']);
    lb.failing = 'htable.dump';
    await fair.tick(2000);
    await fair.tick(3000);
    lb.failing = null;
    lb.hasTable = false;
    await fair.tick(4000);
    await fair.tick(5000);
    expect(events.map((e) => e.type)).to.deep.equal([
      'source_limited',
      'source_shares_failed',
      'source_shares_missing',
    ]);
    const report = fair.report();
    expect(report.nodes).to.deep.equal([{ node: 'lb1', state: 'missing', errors: 2 }]);
    expect(report.sets[0]?.sources[0]).to.include({ source: 'flood', refused: 900, limited: true });
    // Admission off: no limit, no shares.
    fair.setLimits(new Map([['lb1', { admission: { kind: 'off', sets: [1] }, fraction: 1 }]]));
    lb.hasTable = true;
    await fair.tick(6000);
    expect(fair.report().sets[0]?.sources[0]?.share_cps).to.equal(null);
    // The table is back: the recovery is told once (and the flood, no longer limited, released).
    expect(events.map((e) => e.type).slice(3)).to.deep.equal(['source_shares_ok', 'source_released']);
    await fair.tick(7000);
    expect(events, 'told once').to.have.length(5);
    await fair.stop();
  });
});

describe('FairAdmission.stop', () => {
  it('waits for a round in flight before it returns (the caller then closes the RPC clients)', async () => {
    let release = (): void => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const calls: string[] = [];
    const rpc = {
      call: async (method: string): Promise<unknown> => {
        calls.push(method);
        await gate;
        return [];
      },
    };
    const config = { admission: { enabled: true, headroom: 0.92, fairness: fairness() } } as ControllerConfig;
    const fair = new FairAdmission(
      [new SourceLink(node, rpc, null)],
      () => config,
      () => undefined,
    );
    fair.start(60_000);
    expect(calls).to.deep.equal(['htable.dump']);
    let stopped = false;
    const stopping = fair.stop().then(() => (stopped = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(stopped, 'still reading').to.equal(false);
    release();
    await stopping;
    expect(stopped).to.equal(true);
  });
});

describe('SourceLink: when shares are written at all', () => {
  it('one ungrouped source alone gets no shares; a second source brings them', async () => {
    const lb = new FakeLb();
    const link = new SourceLink(node, lb, null);
    await link.tick(settings(), 0);
    lb.offer(1, 'a', 150, 50);
    await link.tick(settings(), 1000);
    expect(lb.writes(), 'a lone source: the set limiter alone').to.deep.equal([]);
    lb.offer(1, 'a', 150, 50);
    lb.offer(1, 'b', 10);
    await link.tick(settings(), 2000);
    expect(lb.writes()).to.include.members(['htable.seti G::1::a', 'htable.seti G::1::b']);
  });
});
