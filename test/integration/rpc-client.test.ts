/**
 * The JSON-RPC client against a real Kamailio 5.6.3 with jsonrpcs over HTTP
 * (test/fixtures/kamailio/rpc-test.cfg: Basic auth, and a /stall path that sleeps 3 s in the worker).
 */
import { expect } from 'chai';
import http from 'node:http';
import { join } from 'node:path';
import { startKamailio } from '../../src/lab/kamailio.js';
import {
  KamailioRpcClient,
  RpcAbortedError,
  RpcAuthError,
  RpcDeadlineError,
  RpcHttpError,
  RpcMethodError,
  RpcProtocolError,
  RpcTransportError,
} from '../../src/kamailio/rpc.js';
import { REPO_ROOT, useProcessGroup } from '../support/harness.js';

const IP = '127.0.4.10';
const SIP_PORT = 5060;
const RPC_PORT = 5071;
const CFG = join(REPO_ROOT, 'test', 'fixtures', 'kamailio', 'rpc-test.cfg');
const GOOD = { username: 'sipweigh', password: 'test-secret' };

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected the call to fail');
}

describe('integration: Kamailio JSON-RPC client', function () {
  const handle = useProcessGroup('rpc');
  const clients: KamailioRpcClient[] = [];
  const client = (path: string, opts: Partial<ConstructorParameters<typeof KamailioRpcClient>[0]> = {}) => {
    const c = new KamailioRpcClient({ url: `http://${IP}:${RPC_PORT}${path}`, ...GOOD, ...opts });
    clients.push(c);
    return c;
  };

  before(async function () {
    this.timeout(30000);
    await startKamailio(handle.group, {
      name: 'kamailio-rpc',
      cfg: CFG,
      defines: { SW_TEST_IP: IP, SW_TEST_SIP_PORT: SIP_PORT, SW_TEST_RPC_PORT: RPC_PORT },
      waitFor: [
        { transport: 'udp', address: IP, port: SIP_PORT },
        { transport: 'tcp', address: IP, port: RPC_PORT },
      ],
    });
  });

  after(function () {
    for (const c of clients) c.close();
  });

  it('calls a method and resolves its result (tm.stats, stats.fetchn with string params)', async function () {
    const rpc = client('/RPC');
    const tm = (await rpc.call('tm.stats')) as Record<string, unknown>;
    expect(tm).to.have.property('current').that.is.a('number');
    const stats = (await rpc.call('stats.fetchn', ['sl:', 'core:'])) as Record<string, unknown>;
    expect(stats).to.have.property('sl.200_replies').that.is.a('number');
    expect(stats).to.have.property('core.rcv_requests').that.is.a('number');
  });

  it('reuses one kept-alive connection for consecutive calls', async function () {
    const rpc = client('/RPC', { maxSockets: 1 });
    // Kamailio numbers its TCP connections in order: a new connection per call would raise the top id.
    const topId = async () =>
      Math.max(...((await rpc.call('core.tcp_list')) as { id: number }[]).map((c) => c.id));
    const before = await topId();
    for (let i = 0; i < 20; i++) await rpc.call('core.uptime');
    expect(await topId()).to.equal(before);
  });

  it('turns the JSON-RPC error in an HTTP 500 body into an RpcMethodError', async function () {
    const e = await rejection(client('/RPC').call('no.such.method'));
    expect(e).to.be.instanceOf(RpcMethodError);
    const err = e as RpcMethodError;
    expect(err.kind).to.equal('rpc');
    expect(err.code).to.equal(500);
    expect(err.rpcMessage).to.equal('Method Not Found');
    expect(err.message).to.include('no.such.method').and.include(`${IP}:${RPC_PORT}`);
  });

  it('parses the JSON-RPC error of any non-2xx status (HTTP 400 for a missing parameter)', async function () {
    const e = await rejection(client('/RPC').call('stats.fetchn'));
    expect(e).to.be.instanceOf(RpcMethodError);
    expect((e as RpcMethodError).code).to.equal(400);
    expect((e as RpcMethodError).rpcMessage).to.equal('Please provide which stats to retrieve');
  });

  it('wrong credentials give an RpcAuthError (HTTP 401), never a result', async function () {
    const e = await rejection(client('/RPC', { password: 'wrong' }).call('tm.stats'));
    expect(e).to.be.instanceOf(RpcAuthError);
    expect((e as RpcAuthError).status).to.equal(401);
    const none = await rejection(
      new KamailioRpcClient({ url: `http://${IP}:${RPC_PORT}/RPC` }).call('tm.stats'),
    );
    expect(none).to.be.instanceOf(RpcAuthError);
  });

  it('keeps credentials out of error messages', async function () {
    const e = await rejection(client('/RPC', { password: 'wrong-secret' }).call('tm.stats'));
    expect((e as Error).message)
      .to.not.include('wrong-secret')
      .and.not.include('sipweigh:');
  });

  it('a stalled server hits the deadline, and the connection is usable again afterwards', async function () {
    this.timeout(20000);
    const stalled = client('/stall', { deadlineMs: 300 });
    const t0 = performance.now();
    const e = await rejection(stalled.call('tm.stats'));
    const took = performance.now() - t0;
    expect(e).to.be.instanceOf(RpcDeadlineError);
    expect((e as RpcDeadlineError).deadlineMs).to.equal(300);
    // The Kamailio worker sleeps 3 s: returning well before that proves the deadline, not the server, ended it.
    expect(took).to.be.lessThan(2500);
    // Other workers still serve; a fresh call on a healthy path succeeds.
    expect(await client('/RPC').call('core.uptime')).to.have.property('uptime');
  });

  it('a per-call deadline overrides the client default', async function () {
    this.timeout(20000);
    const e = await rejection(
      client('/stall', { deadlineMs: 60000 }).call('tm.stats', [], { deadlineMs: 200 }),
    );
    expect(e).to.be.instanceOf(RpcDeadlineError);
  });

  it('an AbortSignal ends a call early with RpcAbortedError', async function () {
    this.timeout(20000);
    const abort = new AbortController();
    const p = client('/stall', { deadlineMs: 60000 }).call('tm.stats', [], { signal: abort.signal });
    setTimeout(() => abort.abort(), 100);
    expect(await rejection(p)).to.be.instanceOf(RpcAbortedError);
  });

  it('nothing listening gives an RpcTransportError with the socket error code', async function () {
    const e = await rejection(new KamailioRpcClient({ url: `http://${IP}:5999/RPC` }).call('tm.stats'));
    expect(e).to.be.instanceOf(RpcTransportError);
    expect((e as RpcTransportError).code).to.equal('ECONNREFUSED');
  });

  it('a reply that is not JSON-RPC is an RpcProtocolError; a non-RPC error status an RpcHttpError', async function () {
    // Not Kamailio: a plain HTTP server standing for a misrouted URL or a proxy in between.
    const server = http.createServer((req, res) => {
      req.resume();
      if (req.url === '/html') res.writeHead(200, { 'Content-Type': 'text/html' }).end('<html>hello</html>');
      else if (req.url === '/empty-object') res.writeHead(200).end('{"jsonrpc":"2.0","id":1}');
      else res.writeHead(502).end('Bad Gateway');
    });
    await new Promise<void>((r) => server.listen(5090, IP, () => r()));
    try {
      const base = `http://${IP}:5090`;
      expect(
        await rejection(new KamailioRpcClient({ url: `${base}/html` }).call('tm.stats')),
      ).to.be.instanceOf(RpcProtocolError);
      const noResult = await rejection(
        new KamailioRpcClient({ url: `${base}/empty-object` }).call('tm.stats'),
      );
      expect(noResult).to.be.instanceOf(RpcProtocolError);
      expect((noResult as Error).message).to.include('neither result nor error');
      const gateway = await rejection(new KamailioRpcClient({ url: `${base}/proxy` }).call('tm.stats'));
      expect(gateway).to.be.instanceOf(RpcHttpError);
      expect(gateway).to.include({ status: 502, body: 'Bad Gateway' });
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('refuses a URL that is not http(s)', function () {
    expect(() => new KamailioRpcClient({ url: `ftp://${IP}/` })).to.throw('http: or https:');
  });
});
