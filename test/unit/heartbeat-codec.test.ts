import { expect } from 'chai';
import fc from 'fast-check';
import { createHmac } from 'node:crypto';
import {
  decodeDatagram,
  encodeMessage,
  EncodeError,
  readHeader,
  typeMask,
  MAC_BYTES,
  DROP_REASONS,
  type KeyLookup,
} from '../../src/heartbeat/codec.js';
import { backendKeys, deriveBackendKey, heartbeatKey, keyIdOf } from '../../src/heartbeat/keys.js';
import { MAX_DATAGRAM_BYTES, type HeartbeatMessage } from '../../src/heartbeat/messages.js';
import { backendIdArb, messageArb, reportArb } from '../support/heartbeat-arbitraries.js';

const MASTER = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
const OTHER_MASTER = Buffer.alloc(32, 0xab);

/** Lookup that knows every backend id (derives from MASTER): the strongest receiver for rejection tests. */
const anyBackend: KeyLookup = (id) => backendKeys(id, [MASTER]);
const keyFor = (id: string, master = MASTER) => heartbeatKey(deriveBackendKey(master, id));

describe('heartbeat codec (property tests)', function () {
  it('every valid message round-trips exactly', function () {
    fc.assert(
      fc.property(messageArb, (m) => {
        const k = keyFor(m.backendId);
        const buf = encodeMessage(m, k);
        expect(buf.length).to.be.at.most(MAX_DATAGRAM_BYTES);
        const d = decodeDatagram(buf, anyBackend);
        expect(d).to.deep.equal({ ok: true, msg: m, keyId: k.id });
      }),
      { numRuns: 2000 },
    );
  });

  it('any single-byte change to a signed datagram is rejected', function () {
    fc.assert(
      fc.property(messageArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (m, pos, delta) => {
        const buf = encodeMessage(m, keyFor(m.backendId));
        const i = pos % buf.length;
        buf[i] = (buf[i]! + delta) & 0xff;
        const d = decodeDatagram(buf, anyBackend);
        expect(d.ok, `byte ${i} of ${buf.length} changed by ${delta}`).to.equal(false);
      }),
      { numRuns: 5000 },
    );
  });

  it('rejects a message signed with a key from another master (unknown_key or bad_mac)', function () {
    fc.assert(
      fc.property(messageArb, (m) => {
        const d = decodeDatagram(encodeMessage(m, keyFor(m.backendId, OTHER_MASTER)), anyBackend);
        expect(d.ok).to.equal(false);
        if (!d.ok) expect(d.reason).to.be.oneOf(['unknown_key', 'bad_mac']);
      }),
      { numRuns: 500 },
    );
  });

  it("rejects a message for backend A signed with backend B's key", function () {
    fc.assert(
      fc.property(messageArb, backendIdArb, (m, other) => {
        fc.pre(other !== m.backendId);
        const d = decodeDatagram(encodeMessage(m, keyFor(other)), anyBackend);
        expect(d.ok).to.equal(false);
        if (!d.ok) expect(d.reason).to.be.oneOf(['unknown_key', 'bad_mac']);
      }),
      { numRuns: 500 },
    );
  });

  it('with two masters (rotation) accepts both keys and reports which one signed', function () {
    fc.assert(
      fc.property(messageArb, fc.boolean(), (m, useOld) => {
        const lookup: KeyLookup = (id) => backendKeys(id, [OTHER_MASTER, MASTER]);
        const k = keyFor(m.backendId, useOld ? MASTER : OTHER_MASTER);
        const d = decodeDatagram(encodeMessage(m, k), lookup);
        expect(d.ok).to.equal(true);
        if (d.ok) expect(d.keyId).to.equal(k.id);
      }),
      { numRuns: 300 },
    );
  });

  it('every proper prefix (truncation) is rejected', function () {
    fc.assert(
      fc.property(messageArb, fc.nat(), (m, cut) => {
        const buf = encodeMessage(m, keyFor(m.backendId));
        const d = decodeDatagram(buf.subarray(0, cut % buf.length), anyBackend);
        expect(d.ok).to.equal(false);
        if (!d.ok) expect(d.reason).to.be.oneOf(['truncated', 'bad_mac', 'malformed']);
      }),
      { numRuns: 2000 },
    );
  });

  it('appending bytes is rejected', function () {
    fc.assert(
      fc.property(messageArb, fc.uint8Array({ minLength: 1, maxLength: 64 }), (m, extra) => {
        const buf = Buffer.concat([encodeMessage(m, keyFor(m.backendId)), extra]);
        expect(decodeDatagram(buf, anyBackend).ok).to.equal(false);
      }),
      { numRuns: 500 },
    );
  });

  it('an oversized datagram is dropped as oversized even when correctly signed', function () {
    fc.assert(
      fc.property(reportArb, fc.integer({ min: 1, max: 2000 }), (m, pad) => {
        // Sign a datagram that is valid but for its length: payload padded with JSON whitespace.
        const ok = encodeMessage(m, keyFor(m.backendId));
        const body = ok.subarray(0, ok.length - MAC_BYTES);
        const need = Math.max(0, MAX_DATAGRAM_BYTES + 1 - ok.length);
        const signed = Buffer.concat([body, Buffer.alloc(need + pad, 0x20)]);
        const mac = createHmac('sha256', deriveBackendKey(MASTER, m.backendId)).update(signed).digest();
        const d = decodeDatagram(Buffer.concat([signed, mac]), anyBackend);
        expect(d).to.deep.equal({ ok: false, reason: 'oversized' });
      }),
      { numRuns: 200 },
    );
  });

  it('never throws on arbitrary bytes, and never accepts them', function () {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 1400 }), (bytes) => {
        const d = decodeDatagram(Buffer.from(bytes), anyBackend);
        expect(d.ok).to.equal(false);
        if (!d.ok) expect(DROP_REASONS).to.include(d.reason);
      }),
      { numRuns: 5000 },
    );
  });

  it('never accepts random bytes behind a valid header', function () {
    fc.assert(
      fc.property(messageArb, fc.uint8Array({ minLength: 34, maxLength: 900 }), (m, tail) => {
        const buf = encodeMessage(m, keyFor(m.backendId));
        const h = readHeader(buf);
        expect(h.ok).to.equal(true);
        if (!h.ok) return;
        const forged = Buffer.concat([buf.subarray(0, h.header.payloadOffset), tail]);
        expect(decodeDatagram(forged, anyBackend).ok).to.equal(false);
      }),
      { numRuns: 1000 },
    );
  });
});

describe('heartbeat codec (examples)', function () {
  const k = keyFor('be-1');
  const probe: HeartbeatMessage = {
    type: 'probe',
    backendId: 'be-1',
    seq: 1,
    ts: 1_700_000_000_000,
    boot: 'ctrl-boot-1',
  };

  it('drops a type the receiver does not accept before looking up a key', function () {
    let looked = 0;
    const d = decodeDatagram(
      encodeMessage(probe, k),
      () => (looked++, [k]),
      typeMask(['report', 'hello', 'bye']),
    );
    expect(d).to.deep.equal({ ok: false, reason: 'unexpected_type' });
    expect(looked).to.equal(0);
  });

  it('drops an unknown backend without authenticating', function () {
    const d = decodeDatagram(encodeMessage(probe, k), () => undefined);
    expect(d).to.deep.equal({ ok: false, reason: 'unknown_backend' });
  });

  it('drops unknown versions and types, and bad magic', function () {
    const buf = encodeMessage(probe, k);
    const v2 = Buffer.from(buf);
    v2[2] = 2;
    expect(decodeDatagram(v2, anyBackend)).to.deep.equal({ ok: false, reason: 'unknown_version' });
    const t9 = Buffer.from(buf);
    t9[3] = 9;
    expect(decodeDatagram(t9, anyBackend)).to.deep.equal({ ok: false, reason: 'unknown_type' });
    const magic = Buffer.from(buf);
    magic[0] = 0x54;
    expect(decodeDatagram(magic, anyBackend)).to.deep.equal({ ok: false, reason: 'malformed' });
  });

  it('drops an authentic payload that is not JSON (malformed) or breaks the schema (schema)', function () {
    const sign = (json: string) => {
      const head = Buffer.from([0x53, 0x57, 1, 1, k.id, 4, ...Buffer.from('be-1')]);
      const body = Buffer.concat([head, Buffer.from(json)]);
      return Buffer.concat([
        body,
        createHmac('sha256', deriveBackendKey(MASTER, 'be-1')).update(body).digest(),
      ]);
    };
    expect(decodeDatagram(sign('{"seq":1,'), anyBackend)).to.deep.equal({ ok: false, reason: 'malformed' });
    expect(decodeDatagram(sign('{"seq":-1,"ts":1,"boot":"abcdefgh"}'), anyBackend)).to.deep.equal({
      ok: false,
      reason: 'schema',
    });
    expect(decodeDatagram(sign('{"seq":1,"ts":1,"boot":"abcdefgh","x":1}'), anyBackend)).to.deep.equal({
      ok: false,
      reason: 'schema',
    });
    expect(decodeDatagram(sign('[1,2]'), anyBackend)).to.deep.equal({ ok: false, reason: 'schema' });
    expect(decodeDatagram(sign('{"seq":1,"ts":1,"boot":"abcdefgh"}'), anyBackend).ok).to.equal(true);
  });

  it('refuses to encode what the schema forbids', function () {
    expect(() => encodeMessage({ ...probe, seq: -1 }, k)).to.throw(EncodeError);
    expect(() => encodeMessage({ ...probe, boot: 'short' }, k)).to.throw(EncodeError);
    expect(() => encodeMessage({ ...probe, backendId: 'has space' }, k)).to.throw(EncodeError);
  });

  it('matches the worked example of docs/heartbeat-protocol.md byte for byte', function () {
    const key = deriveBackendKey(MASTER, 'be-1');
    expect(key.toString('hex')).to.equal(WORKED.key);
    expect(keyIdOf(key)).to.equal(WORKED.keyId);
    expect(encodeMessage(probe, heartbeatKey(key)).toString('hex')).to.equal(WORKED.probe);
  });
});

/** Filled from the implementation once, then frozen: a change here is a protocol change. */
const WORKED = {
  key: '827ae85f2fd096d88b0b0bdba9634e650889203840358fdfbe6b389af6c46d63',
  keyId: 68,
  probe:
    '53570101440462652d317b22736571223a312c227473223a313730303030303030303030302c22626f6f74223a226374726c2d626f6f742d31227d' +
    'a9a7e6107caddf4b7111d5f61cd24f512d5fbe52b220eb2c09479c201ddea756',
};
