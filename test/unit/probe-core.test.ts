import { expect } from 'chai';
import { ProbeCore } from '../../src/probe/probe-core.js';
import type { UdpAddress } from '../../src/util/udp-address.js';
import { DROP_REASONS, decodeDatagram, encodeMessage, type DropReason } from '../../src/heartbeat/codec.js';
import { deriveBackendKey, heartbeatKey } from '../../src/heartbeat/keys.js';
import { AGENT_SENDS, type ProbeMessage } from '../../src/heartbeat/messages.js';
import { EXPECTED_REASONS, fuzzDatagrams, FUZZ_KINDS, type FuzzKind } from '../support/fuzz-datagrams.js';
import { IDLE_METRICS } from '../support/fake-agent.js';

const MASTER = Buffer.alloc(32, 0x44);
const AGENT: UdpAddress = { address: '127.0.3.50', port: 4000 };

/** A core on a manual clock, recording what it sends. */
function makeCore(opts: Partial<ConstructorParameters<typeof ProbeCore>[0]> = {}) {
  let mono = 1000;
  const wall0 = 1_700_000_000_000;
  const sent: { buf: Buffer; to: UdpAddress }[] = [];
  const core = new ProbeCore(
    {
      masterKeys: [MASTER],
      clock: { mono: () => mono, wall: () => wall0 + mono },
      random: () => 0.5,
      ...opts,
    },
    (buf, to) => sent.push({ buf, to }),
  );
  return {
    core,
    sent,
    now: () => mono,
    wall: () => wall0 + mono,
    advance(ms: number) {
      const end = mono + ms;
      while (core.nextDue <= end) {
        mono = Math.max(mono, core.nextDue);
        core.tick(mono);
      }
      mono = end;
    },
  };
}

function lastProbe(sent: { buf: Buffer }[], id: string): ProbeMessage {
  const k = heartbeatKey(deriveBackendKey(MASTER, id));
  const d = decodeDatagram(sent[sent.length - 1]!.buf, () => [k]);
  if (!d.ok || d.msg.type !== 'probe') throw new Error('no probe');
  return d.msg;
}

describe('probe core (no sockets, manual clock)', function () {
  it("starts each backend's probe sequence at a random point, so a report captured before a restart answers no new probe", function () {
    const firstSeqs = [0, 1, 2].map(() => {
      const { core, sent, advance } = makeCore();
      core.upsert({ id: 'be-seq', set: 1, uri: 'sip:x', capacity: 1, agent: AGENT, source: 'config' });
      advance(1000);
      return lastProbe(sent.slice(0, 1), 'be-seq').seq;
    });
    expect(new Set(firstSeqs).size, `first probe seqs ${firstSeqs.join(', ')}`).to.equal(3);
    expect(firstSeqs.every((s) => Number.isSafeInteger(s) && s >= 0)).to.equal(true);
  });

  it('drops every fuzz datagram, each with a reason its kind allows', function () {
    const { core, wall } = makeCore({ selfRegistrationSets: new Set([2]) });
    core.upsert({ id: 'fz-target', set: 1, uri: 'sip:x', capacity: 1, source: 'config' });
    const key = heartbeatKey(deriveBackendKey(MASTER, 'fz-target'));
    const replayable = [0, 1, 2].map((i) =>
      encodeMessage(
        {
          type: 'report',
          backendId: 'fz-target',
          seq: i,
          ts: wall(),
          boot: 'primeboot1',
          echoSeq: 77,
          echoTs: 1,
          metrics: IDLE_METRICS,
        },
        key,
      ),
    );
    for (const b of replayable) core.receive(b, AGENT);
    expect(core.counters.accepted.report).to.equal(3);
    const seen: Record<FuzzKind, Set<DropReason>> = Object.fromEntries(
      FUZZ_KINDS.map((k) => [k, new Set()]),
    ) as never;
    const before = { ...core.counters.dropped };
    for (const { kind, buf } of fuzzDatagrams({
      target: { backendId: 'fz-target', key: deriveBackendKey(MASTER, 'fz-target'), accepts: AGENT_SENDS },
      count: 30_000,
      seed: 7,
      replayable,
      now: wall,
    })) {
      const snapshot = { ...core.counters.dropped };
      core.receive(buf, AGENT);
      const changed = DROP_REASONS.filter((r) => core.counters.dropped[r] !== snapshot[r]);
      expect(changed, `${kind} must be dropped exactly once`).to.have.length(1);
      const reason = changed[0]!;
      expect(EXPECTED_REASONS[kind], `${kind} dropped as ${reason}`).to.include(reason);
      seen[kind].add(reason);
    }
    expect(core.counters.accepted.report).to.equal(3);
    expect(core.size).to.equal(1);
    for (const k of FUZZ_KINDS) expect(seen[k].size, k).to.be.greaterThan(0);
    expect(DROP_REASONS.reduce((s, r) => s + core.counters.dropped[r] - before[r], 0)).to.equal(30_000);
  });

  it('probes each backend about once per interval, with jitter spread, and never an unknown one', function () {
    const { core, sent, advance } = makeCore({ random: Math.random });
    for (let i = 0; i < 50; i++)
      core.upsert({
        id: `b${i}`,
        set: 1,
        uri: 'sip:x',
        capacity: 1,
        agent: { address: '127.0.3.60', port: 5000 + i },
        source: 'config',
      });
    advance(10_000);
    // 50 backends × 10 s / 200 ms = 2,500 probes. Nobody answers, so all turn suspect at about the
    // same time: mass suspicion disables the faster suspect probing (it would only add load).
    expect(sent.length).to.be.within(2400, 2600);
    const perPort = new Map<number, number>();
    for (const s of sent) perPort.set(s.to.port, (perPort.get(s.to.port) ?? 0) + 1);
    expect(perPort.size).to.equal(50);
  });

  it('stretches every interval to stay within the probe budget', function () {
    const { core, sent, advance } = makeCore({ random: Math.random, timing: { maxProbesPerSecond: 100 } });
    for (let i = 0; i < 50; i++)
      core.upsert({
        id: `b${i}`,
        set: 1,
        uri: 'sip:x',
        capacity: 1,
        agent: { address: '127.0.3.60', port: 5000 + i },
        source: 'config',
      });
    expect(core.baseIntervalMs()).to.equal(500);
    advance(10_000);
    // 50 backends at 200 ms would be 2,500 probes; the budget allows 100/s.
    expect(sent.length).to.be.within(950, 1050);
  });

  it('probes a lone suspect twice as fast, then falls back to the normal cadence once down', function () {
    const { core, sent, advance, wall, now } = makeCore();
    for (let i = 0; i < 20; i++)
      core.upsert({
        id: `f${i}`,
        set: 1,
        uri: 'sip:x',
        capacity: 1,
        agent: { address: '127.0.3.61', port: 6000 + i },
        source: 'config',
      });
    const keys = new Map(
      Array.from({ length: 20 }, (_, i) => [`f${i}`, heartbeatKey(deriveBackendKey(MASTER, `f${i}`))]),
    );
    let seq = 0;
    const f0Probes: number[] = [];
    // Every agent answers each probe 2 ms later; f0 stops answering at t = 3 s (it died).
    const step = () => {
      for (const s of sent.splice(0)) {
        const id = `f${s.to.port - 6000}`;
        if (id === 'f0') f0Probes.push(now());
        if (id === 'f0' && now() >= 3000) continue;
        const d = decodeDatagram(s.buf, () => [keys.get(id)!]);
        if (!d.ok || d.msg.type !== 'probe') throw new Error('bad probe');
        core.receive(
          encodeMessage(
            {
              type: 'report',
              backendId: id,
              seq: seq++,
              ts: wall(),
              boot: 'agentboot1',
              echoSeq: d.msg.seq,
              echoTs: d.msg.ts,
              metrics: IDLE_METRICS,
            },
            keys.get(id)!,
          ),
          AGENT,
        );
      }
    };
    while (now() < 8000) {
      advance(1);
      step();
    }
    expect(core.get('f1')!.health.kind).to.equal('up');
    expect(core.get('f0')!.health.kind).to.equal('down');
    const gaps = f0Probes.slice(1).map((t, i) => t - f0Probes[i]!);
    const after = (t: number) => gaps.filter((_, i) => f0Probes[i]! >= t);
    // Before death: ~200 ms (±10 % jitter). Right after the first miss: ~100 ms. Once down: ~200 ms again.
    expect(gaps.slice(0, 10).every((g) => g >= 179 && g <= 221)).to.equal(true);
    expect(Math.min(...after(3000).slice(0, 3))).to.be.at.most(111);
    expect(after(5000).every((g) => g >= 179 && g <= 221)).to.equal(true);
  });

  it('a report answering a probe gives an RTT and, after returnAfterOks, up', function () {
    const { core, sent, advance, wall } = makeCore();
    core.upsert({ id: 'r1', set: 1, uri: 'sip:x', capacity: 1, agent: AGENT, source: 'config' });
    const key = heartbeatKey(deriveBackendKey(MASTER, 'r1'));
    for (let i = 0; i < 5; i++) {
      const n = sent.length;
      while (sent.length === n) advance(1);
      const p = lastProbe(sent, 'r1');
      advance(3);
      core.receive(
        encodeMessage(
          {
            type: 'report',
            backendId: 'r1',
            seq: i,
            ts: wall(),
            boot: 'agentboot1',
            echoSeq: p.seq,
            echoTs: p.ts,
            metrics: IDLE_METRICS,
          },
          key,
        ),
        AGENT,
      );
    }
    // The core builds probe payloads by hand: they must be byte-identical to the codec's.
    const p = lastProbe(sent, 'r1');
    expect(sent[sent.length - 1]!.buf.equals(encodeMessage(p, key))).to.equal(true);
    const v = core.get('r1')!;
    expect(v.health.kind).to.equal('up');
    expect(v.lastRttMs).to.equal(3);
    expect(core.counters.misses).to.equal(0);
  });

  it('a hello for a set without self-registration is not_allowed and not stored', function () {
    const { core, sent, wall } = makeCore({ selfRegistrationSets: new Set([5]) });
    const key = heartbeatKey(deriveBackendKey(MASTER, 'new-1'));
    core.receive(
      encodeMessage(
        {
          type: 'hello',
          backendId: 'new-1',
          seq: 1,
          ts: wall(),
          boot: 'agentboot1',
          set: 4,
          uri: 'sip:a',
          capacity: 1,
        },
        key,
      ),
      AGENT,
    );
    expect(core.counters.dropped.not_allowed).to.equal(1);
    expect(core.get('new-1')).to.equal(undefined);
    expect(sent).to.have.length(0);
    core.receive(
      encodeMessage(
        {
          type: 'hello',
          backendId: 'new-1',
          seq: 2,
          ts: wall(),
          boot: 'agentboot1',
          set: 5,
          uri: 'sip:a',
          capacity: 1,
        },
        key,
      ),
      AGENT,
    );
    expect(core.get('new-1')).to.include({ set: 5, source: 'hello' });
    expect(sent).to.have.length(1); // the hello_ack
  });

  it('caps self-registration (a leaked master cannot fill memory)', function () {
    const { core, wall } = makeCore({ selfRegistrationSets: new Set([5]), maxSelfRegistered: 3 });
    for (let i = 0; i < 10; i++) {
      const id = `s-${i}`;
      core.receive(
        encodeMessage(
          {
            type: 'hello',
            backendId: id,
            seq: 1,
            ts: wall(),
            boot: 'agentboot1',
            set: 5,
            uri: 'sip:a',
            capacity: 1,
          },
          heartbeatKey(deriveBackendKey(MASTER, id)),
        ),
        AGENT,
      );
    }
    expect(core.size).to.equal(3);
    expect(core.counters.dropped.not_allowed).to.equal(7);
  });

  it('passive evidence makes an up backend suspect (probed faster, as after a miss); an answer clears it', function () {
    const { core, sent, advance, wall } = makeCore({ health: { returnAfterOks: 1 } });
    core.upsert({ id: 'ev1', set: 1, uri: 'sip:x', capacity: 1, agent: AGENT, source: 'config' });
    const key = heartbeatKey(deriveBackendKey(MASTER, 'ev1'));
    let seq = 0;
    const answer = () => {
      const n = sent.length;
      while (sent.length === n) advance(1);
      const p = lastProbe(sent, 'ev1');
      advance(2);
      const report = {
        type: 'report' as const,
        backendId: 'ev1',
        seq: seq++,
        ts: wall(),
        boot: 'agentboot9',
      };
      core.receive(
        encodeMessage({ ...report, echoSeq: p.seq, echoTs: p.ts, metrics: IDLE_METRICS }, key),
        AGENT,
      );
    };
    expect(core.retransmitted('ev1'), 'not up yet').to.equal(false);
    answer();
    expect(core.get('ev1')!.health.kind).to.equal('up');
    expect(core.retransmitted('ev1')).to.equal(true);
    expect(core.get('ev1')!.health).to.include({ kind: 'suspect', misses: 0 });
    expect(core.retransmitted('ev1'), 'already suspect').to.equal(false);
    answer();
    expect(core.get('ev1')!.health.kind).to.equal('up');
    expect(core.retransmitted('nobody')).to.equal(false);
  });

  it('keeps a backend out of rotation while its agent reports draining, whatever drain ended before', function () {
    const { core, sent, advance, wall } = makeCore({ health: { returnAfterOks: 2 } });
    core.upsert({ id: 'dr1', set: 1, uri: 'sip:x', capacity: 1, agent: AGENT, source: 'config' });
    const key = heartbeatKey(deriveBackendKey(MASTER, 'dr1'));
    let seq = 0;
    const answer = (boot: string, draining: boolean) => {
      const n = sent.length;
      while (sent.length === n) advance(1);
      const p = lastProbe(sent, 'dr1');
      advance(2);
      core.receive(
        encodeMessage(
          {
            type: 'report',
            backendId: 'dr1',
            seq: seq++,
            ts: wall(),
            boot,
            echoSeq: p.seq,
            echoTs: p.ts,
            metrics: { ...IDLE_METRICS, draining },
          },
          key,
        ),
        AGENT,
      );
    };
    for (let i = 0; i < 3; i++) answer('agentboot1', false);
    expect(core.get('dr1')!.health.kind).to.equal('up');
    answer('agentboot1', true);
    expect(core.get('dr1')!.health).to.include({ kind: 'draining', cause: 'report' });
    // The operator drains too, then undrains: the agent still says it is draining.
    core.drain('dr1', true);
    core.drain('dr1', false);
    for (let i = 0; i < 5; i++) answer('agentboot1', true);
    expect(core.get('dr1')!.health, 'after operator undrain').to.include({
      kind: 'draining',
      cause: 'report',
    });

    // bye, then the agent restarts (new boot: the bye drain ends) still configured to drain.
    core.receive(
      encodeMessage({ type: 'bye', backendId: 'dr1', seq: seq++, ts: wall(), boot: 'agentboot1' }, key),
      AGENT,
    );
    expect(core.get('dr1')!.health).to.include({ kind: 'draining', cause: 'bye' });
    core.receive(
      encodeMessage(
        {
          type: 'hello',
          backendId: 'dr1',
          seq: 0,
          ts: wall(),
          boot: 'agentboot2',
          set: 1,
          uri: 'sip:x',
          capacity: 1,
        },
        key,
      ),
      AGENT,
    );
    seq = 1;
    for (let i = 0; i < 5; i++) answer('agentboot2', true);
    expect(core.get('dr1')!.health, 'after a restart').to.include({ kind: 'draining', cause: 'report' });
    answer('agentboot2', false);
    expect(core.get('dr1')!.health.kind).to.equal('returning');
  });

  it('ends a bye drain when the restarted agent is first heard in a report (its hello was lost)', function () {
    const { core, sent, advance, wall } = makeCore({ health: { returnAfterOks: 2 } });
    core.upsert({ id: 'rb1', set: 1, uri: 'sip:x', capacity: 1, agent: AGENT, source: 'config' });
    const key = heartbeatKey(deriveBackendKey(MASTER, 'rb1'));
    const answer = (boot: string, seq: number) => {
      const n = sent.length;
      while (sent.length === n) advance(1);
      const p = lastProbe(sent, 'rb1');
      advance(2);
      core.receive(
        encodeMessage(
          {
            type: 'report',
            backendId: 'rb1',
            seq,
            ts: wall(),
            boot,
            echoSeq: p.seq,
            echoTs: p.ts,
            metrics: IDLE_METRICS,
          },
          key,
        ),
        AGENT,
      );
    };
    for (let i = 0; i < 3; i++) answer('agentboot1', i);
    core.receive(
      encodeMessage({ type: 'bye', backendId: 'rb1', seq: 3, ts: wall(), boot: 'agentboot1' }, key),
      AGENT,
    );
    expect(core.get('rb1')!.health).to.include({ kind: 'draining', cause: 'bye' });
    // The new run's first hello is lost; it answers the probes of its configured controller.
    for (let i = 1; i <= 3; i++) answer('agentboot2', i);
    // Its next hello (same boot) arrives late.
    core.receive(
      encodeMessage(
        {
          type: 'hello',
          backendId: 'rb1',
          seq: 4,
          ts: wall(),
          boot: 'agentboot2',
          set: 1,
          uri: 'sip:x',
          capacity: 1,
        },
        key,
      ),
      AGENT,
    );
    answer('agentboot2', 5);
    expect(core.get('rb1')!.health.kind).to.equal('up');
  });

  it('forgets a self-registered backend after long silence, freeing its place under the cap', function () {
    const { core, sent, advance, wall } = makeCore({
      selfRegistrationSets: new Set([5]),
      maxSelfRegistered: 1,
      forgetSelfRegisteredAfterMs: 10_000,
    });
    const hello = (id: string, boot: string) =>
      core.receive(
        encodeMessage(
          { type: 'hello', backendId: id, seq: 1, ts: wall(), boot, set: 5, uri: 'sip:a', capacity: 1 },
          heartbeatKey(deriveBackendKey(MASTER, id)),
        ),
        AGENT,
      );
    hello('gone-1', 'agentboot1');
    hello('live-1', 'agentboot1');
    expect(core.counters.dropped.not_allowed, 'the cap holds').to.equal(1);
    // gone-1 never answers: without forgetting it, it is probed forever and the cap stays full.
    advance(9_000);
    expect(core.get('gone-1')).to.not.equal(undefined);
    advance(2_000);
    expect(core.get('gone-1')).to.equal(undefined);
    expect(core.counters.forgotten).to.equal(1);
    const probes = sent.length;
    advance(5_000);
    expect(sent.length, 'no more probes to a forgotten backend').to.equal(probes);
    hello('live-1', 'agentboot1');
    expect(core.get('live-1')).to.include({ source: 'hello' });
    // An answering self-registered backend is kept.
    const key = heartbeatKey(deriveBackendKey(MASTER, 'live-1'));
    for (let i = 2; i < 100; i++) {
      const n = sent.length;
      while (sent.length === n) advance(1);
      const d = decodeDatagram(sent[sent.length - 1]!.buf, () => [key]);
      if (!d.ok || d.msg.type !== 'probe') continue;
      core.receive(
        encodeMessage(
          {
            type: 'report',
            backendId: 'live-1',
            seq: i,
            ts: wall(),
            boot: 'agentboot1',
            echoSeq: d.msg.seq,
            echoTs: d.msg.ts,
            metrics: IDLE_METRICS,
          },
          key,
        ),
        AGENT,
      );
    }
    expect(core.get('live-1')!.health.kind).to.equal('up');
    expect(core.counters.forgotten).to.equal(1);
  });
  it('takes new master keys live: each backend is still probed with the key its agent signs with, no probe missed', function () {
    const OLD = MASTER;
    const NEW = Buffer.alloc(32, 0x66);
    const { core, sent, advance, wall } = makeCore({ masterKeys: [OLD] });
    core.upsert({ id: 'rot-1', set: 1, uri: 'sip:x', capacity: 1, agent: AGENT, source: 'config' });
    const keyOf = (m: Buffer) => heartbeatKey(deriveBackendKey(m, 'rot-1'));
    let seq = 0;
    /** Waits for the next probe, says which master signed it, and answers it signed with `agentMaster`. */
    const round = (agentMaster: Buffer): 'old' | 'new' | 'none' => {
      const n = sent.length;
      while (sent.length === n) advance(1);
      const buf = sent[sent.length - 1]!.buf;
      const signer = (['old', 'new'] as const).find((w) => {
        const d = decodeDatagram(buf, () => [keyOf(w === 'old' ? OLD : NEW)]);
        return d.ok && d.msg.type === 'probe';
      });
      const d = decodeDatagram(buf, () => [keyOf(OLD), keyOf(NEW)]);
      if (!d.ok || d.msg.type !== 'probe') return 'none';
      advance(2);
      const report = {
        type: 'report' as const,
        backendId: 'rot-1',
        seq: seq++,
        ts: wall(),
        boot: 'agentboot1',
        echoSeq: d.msg.seq,
        echoTs: d.msg.ts,
        metrics: IDLE_METRICS,
      };
      // The agent verifies with what it holds; here it holds both during its move (current + previous).
      core.receive(encodeMessage(report, keyOf(agentMaster)), AGENT);
      return signer ?? 'none';
    };
    for (let i = 0; i < 6; i++) round(OLD);
    expect(core.get('rot-1')!.health.kind).to.equal('up');

    // 1. The controller gets the new master as current and the old one as previous.
    core.setMasterKeys([NEW, OLD]);
    expect(round(OLD), 'an agent still on the old key is probed with it').to.equal('old');
    // 2. The agent moves to its new key: from its first report on, probes follow.
    round(NEW);
    expect(round(NEW)).to.equal('new');
    // 3. The old master is dropped.
    core.setMasterKeys([NEW]);
    expect(round(NEW)).to.equal('new');
    expect(core.counters.misses).to.equal(0);
    expect(core.get('rot-1')!.health.kind).to.equal('up');
    // A report signed with the dropped master is no longer authentic.
    const dropped = core.counters.dropped.unknown_key + core.counters.dropped.bad_mac;
    core.receive(
      encodeMessage(
        {
          type: 'report',
          backendId: 'rot-1',
          seq: seq++,
          ts: wall(),
          boot: 'agentboot1',
          echoSeq: 1,
          echoTs: 1,
          metrics: IDLE_METRICS,
        },
        keyOf(OLD),
      ),
      AGENT,
    );
    expect(core.counters.dropped.unknown_key + core.counters.dropped.bad_mac).to.equal(dropped + 1);
    expect(() => core.setMasterKeys([])).to.throw(RangeError);
  });
});
