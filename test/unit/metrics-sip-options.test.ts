/** The OPTIONS request the agent sends and the matching of replies to it (pure). */
import { expect } from 'chai';
import { buildOptions, matchOptionsResponse, newOptionsTransaction } from '../../src/metrics/sip-options.js';

const local = { address: '127.0.4.20', port: 40000 };
const target = { address: '127.0.4.10', port: 5060 };

/** A reply as Kamailio's sl_send_reply builds it: headers copied from the request, Via with received/rport. */
function replyTo(request: Buffer, status = '200 OK', edit: (text: string) => string = (t) => t): Buffer {
  const lines = request.toString('latin1').split('\r\n');
  const keep = lines.filter((l) => /^(Via|From|To|Call-ID|CSeq):/.test(l));
  const via = keep[0]!.replace(';rport', ';rport=40000;received=127.0.4.20');
  const text = [
    `SIP/2.0 ${status}`,
    via,
    ...keep.slice(1).map((l) => (l.startsWith('To:') ? `${l};tag=abc` : l)),
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
  return Buffer.from(edit(text), 'latin1');
}

describe('metrics: SIP OPTIONS ping', function () {
  it('builds a well-formed OPTIONS with its own branch, Call-ID, From tag and CSeq', function () {
    const tx = newOptionsTransaction(7);
    const text = buildOptions(tx, local, target).toString('latin1');
    expect(text).to.match(/^OPTIONS sip:127\.0\.4\.10:5060 SIP\/2\.0\r\n/);
    expect(text).to.include(`Via: SIP/2.0/UDP 127.0.4.20:40000;branch=${tx.branch};rport\r\n`);
    expect(tx.branch).to.match(/^z9hG4bK/);
    expect(text)
      .to.include(`Call-ID: ${tx.callId}\r\n`)
      .and.include('CSeq: 7 OPTIONS\r\n')
      .and.include(`;tag=${tx.fromTag}\r\n`);
    expect(text)
      .to.include('Max-Forwards: 70\r\n')
      .and.match(/Content-Length: 0\r\n\r\n$/);
    expect(newOptionsTransaction(1).branch).to.not.equal(newOptionsTransaction(1).branch);
  });

  it('brackets IPv6 addresses', function () {
    const text = buildOptions(
      newOptionsTransaction(1),
      { address: '::1', port: 4000 },
      { address: '::1', port: 5060 },
    ).toString('latin1');
    expect(text)
      .to.match(/^OPTIONS sip:\[::1\]:5060 SIP\/2\.0/)
      .and.include('Via: SIP/2.0/UDP [::1]:4000;');
  });

  it('matches its own final reply, whatever the status class', function () {
    const tx = newOptionsTransaction(3);
    const req = buildOptions(tx, local, target);
    expect(matchOptionsResponse(replyTo(req), tx)).to.deep.equal({ status: 200 });
    expect(matchOptionsResponse(replyTo(req, '404 Not Here'), tx)).to.deep.equal({ status: 404 });
    expect(matchOptionsResponse(replyTo(req, '503 Busy'), tx)).to.deep.equal({ status: 503 });
  });

  it('accepts compact header forms and lower-case names', function () {
    const tx = newOptionsTransaction(3);
    const reply = replyTo(buildOptions(tx, local, target), '200 OK', (t) =>
      t.replace('Via:', 'v:').replace('Call-ID:', 'i:').replace('CSeq:', 'cseq:'),
    );
    expect(matchOptionsResponse(reply, tx)).to.deep.equal({ status: 200 });
  });

  it('ignores provisional replies, other transactions, requests and garbage', function () {
    const tx = newOptionsTransaction(3);
    const req = buildOptions(tx, local, target);
    const other = newOptionsTransaction(3);
    expect(matchOptionsResponse(replyTo(req, '100 Trying'), tx)).to.equal(undefined);
    expect(
      matchOptionsResponse(replyTo(buildOptions(other, local, target)), tx),
      'late reply of another ping',
    ).to.equal(undefined);
    expect(
      matchOptionsResponse(
        replyTo(req, '200 OK', (t) => t.replace(tx.callId, 'x@y')),
        tx,
      ),
    ).to.equal(undefined);
    expect(
      matchOptionsResponse(
        replyTo(req, '200 OK', (t) => t.replace('CSeq: 3 OPTIONS', 'CSeq: 4 OPTIONS')),
        tx,
      ),
    ).to.equal(undefined);
    expect(
      matchOptionsResponse(
        replyTo(req, '200 OK', (t) => t.replace('CSeq: 3 OPTIONS', 'CSeq: 3 INVITE')),
        tx,
      ),
    ).to.equal(undefined);
    expect(
      matchOptionsResponse(
        replyTo(req, '200 OK', (t) => t.replace(/^Via:.*\r\n/m, '')),
        tx,
      ),
    ).to.equal(undefined);
    expect(matchOptionsResponse(req, tx), 'our own request looped back').to.equal(undefined);
    expect(matchOptionsResponse(Buffer.from('SIP/2.0 200\r\n\r\n'), tx)).to.equal(undefined);
    expect(matchOptionsResponse(Buffer.alloc(0), tx)).to.equal(undefined);
    expect(matchOptionsResponse(Buffer.alloc(65000, 0xff), tx)).to.equal(undefined);
  });

  it('matches the branch of the top Via only', function () {
    const tx = newOptionsTransaction(3);
    const reply = replyTo(buildOptions(tx, local, target), '200 OK', (t) =>
      t.replace(/^Via: (.*)$/m, 'Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-other, $1'),
    );
    expect(matchOptionsResponse(reply, tx)).to.equal(undefined);
  });
});
