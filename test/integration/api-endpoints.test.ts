/**
 * The controller's HTTP API on a real lab (127.14.x.x): LB, two backends with agents, the
 * controller started by the lab with its API. Every endpoint, its answer checked against
 * schemas/api/; bad bodies (400), missing and wrong tokens (401), unknown paths (404), wrong
 * methods (405); drain and undrain through the CLI as the LB itself lists them; the event stream.
 */
import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { followEvents } from '../../src/api/event-client.js';
import type { StampedEvent } from '../../src/controller/events.js';
import { fetchEffectiveWeights } from '../../src/kamailio/fetch-dispatcher-list.js';
import type { KamailioRpcClient } from '../../src/kamailio/rpc.js';
import { sipweigh } from '../support/cli.js';
import { eventually, REPO_ROOT } from '../support/harness.js';
import { labRpc } from '../support/lb-watch.js';
import { expectSchema, http, startApiLab, waitReady, type ApiLab } from './api-support.js';

describe('controller HTTP API (real lab on 127.14.x.x)', function () {
  this.timeout(180000);
  let t: ApiLab | undefined;
  let rpc: KamailioRpcClient | undefined;
  const api = () => t!.base;
  const lbWeight = async (id: string) => (await fetchEffectiveWeights(rpc!, { deadlineMs: 2000 }))?.get(id);

  before(async function () {
    t = await startApiLab({ backends: 2, net: 14, controller: true });
    rpc = labRpc(t.lab);
    await waitReady(api());
    // Both backends confirmed and scored, so weights and reports are there to check.
    await eventually(
      async () => {
        const b = (await http('GET', `${api()}/api/v1/backends`)).json as {
          backends: { state: string; score: unknown }[];
        };
        return b.backends.length === 2 && b.backends.every((x) => x.state === 'up' && x.score !== null);
      },
      'both backends up and scored',
      60000,
    );
    // And pushed to lb1: a fresh LB probes on its own until the controller's lease lands, and the
    // controller pushes to it only once its backstop is off (docs/controller.md, takeover).
    await eventually(
      async () => {
        const n = (await http('GET', `${api()}/api/v1/lb-nodes`)).json as {
          lb_nodes: { synced: boolean; last_push: unknown }[];
        };
        return n.lb_nodes[0]?.synced === true && n.lb_nodes[0]?.last_push != null;
      },
      'the first push to lb1',
      30000,
    );
  });

  after(async function () {
    rpc?.close();
    await t?.lab.stop();
  });

  it('GET /healthz and /readyz answer without a token', async function () {
    const h = await http('GET', `${api()}/healthz`);
    expect(h.status).to.equal(200);
    expect(h.json).to.deep.equal({ status: 'ok' });
    expectSchema('health', h.json);
    const r = await http('GET', `${api()}/readyz`);
    expect(r.status).to.equal(200);
    expect(r.json).to.deep.equal({ ready: true });
    expectSchema('ready', r.json);
  });

  it('GET /api/v1/status: sets, backends and LB nodes, as `sipweigh status` prints them', async function () {
    const r = await http('GET', `${api()}/api/v1/status`);
    expect(r.status).to.equal(200);
    expectSchema('status', r.json);
    const s = r.json as {
      sets: { id: number; mode: string; backends: { id: string }[] }[];
      lb_nodes: { name: string }[];
    };
    expect(s.sets.map((x) => x.id)).to.deep.equal([1]);
    expect(s.sets[0]!.backends.map((b) => b.id).sort()).to.deep.equal(['be1', 'be2']);
    expect(s.lb_nodes.map((n) => n.name)).to.deep.equal(['lb1']);
  });

  it('GET /api/v1/backends and /backends/{id}: state, report, score, weight per LB node, heartbeat', async function () {
    const all = await http('GET', `${api()}/api/v1/backends`);
    expect(all.status).to.equal(200);
    expectSchema('backends', all.json);
    const one = await http('GET', `${api()}/api/v1/backends/be1`);
    expect(one.status).to.equal(200);
    expectSchema('backend', one.json);
    const b = one.json as {
      id: string;
      uri: string;
      state: string;
      drained: boolean;
      weights: Record<string, number | null>;
      last_report: { age_ms: number; metrics: { capacity: number } };
      heartbeat: { agent: string; rtt_ms: number | null; misses: number };
    };
    expect(b).to.deep.include({ id: 'be1', uri: 'sip:127.14.0.11:5060', state: 'up', drained: false });
    expect(b.heartbeat.agent).to.equal('127.14.0.11:7951');
    expect(b.heartbeat.rtt_ms).to.be.a('number');
    expect(b.last_report.metrics.capacity).to.equal(100);
    // The weight the API says lb1 holds is the one the LB lists.
    expect(b.weights.lb1).to.be.greaterThan(0);
    expect(await lbWeight('be1')).to.equal(b.weights.lb1);
  });

  it('GET /api/v1/backends/{unknown} is 404 with a reason', async function () {
    const r = await http('GET', `${api()}/api/v1/backends/nobody`);
    expect(r.status).to.equal(404);
    expectSchema('error', r.json);
    expect((r.json as { error: string }).error).to.equal('no backend nobody');
  });

  it('GET /api/v1/lb-nodes: last push, drift, counts', async function () {
    const r = await http('GET', `${api()}/api/v1/lb-nodes`);
    expect(r.status).to.equal(200);
    expectSchema('lb-nodes', r.json);
    const n = (
      r.json as { lb_nodes: { name: string; synced: boolean; errors: number; last_push: unknown }[] }
    ).lb_nodes;
    expect(n).to.have.length(1);
    expect(n[0]).to.deep.include({ name: 'lb1', synced: true, errors: 0 });
    expect(n[0]!.last_push).to.not.equal(null);
  });

  it('unknown paths are 404, wrong methods 405 with Allow, all as JSON errors', async function () {
    for (const path of ['/', '/api/v1', '/api/v1/backends/be1/explode', '/favicon.ico']) {
      const r = await http('GET', `${api()}${path}`);
      expect(r.status, path).to.equal(404);
      expectSchema('error', r.json);
    }
    const cases: [string, string, string][] = [
      ['POST', '/healthz', 'GET'],
      ['DELETE', '/api/v1/backends/be1', 'GET'],
      ['GET', '/api/v1/reload', 'POST'],
      ['PUT', '/api/v1/backends/be1/drain', 'POST'],
    ];
    for (const [method, path, allow] of cases) {
      const r = await http(method, `${api()}${path}`, { token: t!.token });
      expect(r.status, `${method} ${path}`).to.equal(405);
      expect(r.headers.get('allow')).to.equal(allow);
      expectSchema('error', r.json);
    }
  });

  it('POSTs need the token: missing or wrong is 401 with WWW-Authenticate: Bearer, and nothing changes', async function () {
    for (const path of ['/api/v1/backends/be1/drain', '/api/v1/backends/be1/undrain', '/api/v1/reload']) {
      for (const token of [undefined, 'wrong-token-0123456789', `${t!.token}x`]) {
        const r = await http('POST', `${api()}${path}`, token ? { token } : {});
        expect(r.status, `${path} ${token ?? 'no token'}`).to.equal(401);
        expect(r.headers.get('www-authenticate')).to.match(/^Bearer/);
        expectSchema('error', r.json);
        expect(r.text).to.not.contain('wrong-token-0123456789');
      }
    }
    const b = (await http('GET', `${api()}/api/v1/backends/be1`)).json as { drained: boolean };
    expect(b.drained).to.equal(false);
  });

  it('bad bodies are 400 naming the field, and change nothing', async function () {
    const cases: [string, RegExp][] = [
      ['{"reason":', /^body: not JSON/],
      ['[]', /^body: must be object/],
      ['{"reason":7}', /^reason: must be string/],
      ['{"reason":"x","force":true}', /^force: unknown field/],
      [JSON.stringify({ reason: 'x'.repeat(300) }), /^reason: must NOT have more than 200 characters/],
      [`{"reason":"${'y'.repeat(5000)}"}`, /^body: too large/],
    ];
    for (const [body, want] of cases) {
      const r = await http('POST', `${api()}/api/v1/backends/be1/drain`, { token: t!.token, body });
      expect(r.status, body.slice(0, 40)).to.equal(400);
      expectSchema('error', r.json);
      expect((r.json as { error: string }).error, body.slice(0, 40)).to.match(want);
    }
    const reload = await http('POST', `${api()}/api/v1/reload`, { token: t!.token, body: '{"now":1}' });
    expect(reload.status).to.equal(400);
    expect((reload.json as { error: string }).error).to.match(/takes no body/);
    const b = (await http('GET', `${api()}/api/v1/backends/be1`)).json as { drained: boolean };
    expect(b.drained).to.equal(false);
    expect(await lbWeight('be1')).to.be.greaterThan(0);
  });

  it('a request node:http cannot parse gets 400, and the API keeps answering', async function () {
    const url = new URL(api());
    const reply = await new Promise<string>((resolve, reject) => {
      const s = connect(Number(url.port), url.hostname, () => s.write('GARBAGE \x00\x01 nonsense\r\n\r\n'));
      let got = '';
      s.on('data', (d) => (got += d.toString()));
      s.on('end', () => resolve(got));
      s.on('error', reject);
      s.setTimeout(10000, () => s.destroy(new Error('no answer')));
    });
    expect(reply).to.match(/^HTTP\/1\.1 400/);
    expect((await http('GET', `${api()}/healthz`)).status).to.equal(200);
  });

  it('GET /api/v1/events streams NDJSON: the history, then a drain as it happens, every line per the schema', async function () {
    const seen: StampedEvent[] = [];
    const bad: string[] = [];
    const f = followEvents({ url: api(), token: null, history: true, onBadLine: (l) => bad.push(l) }, (e) =>
      seen.push(e),
    );
    try {
      await f.ready;
      // The history: the start, the first push and the first weights, before this test connected.
      await eventually(
        () =>
          ['controller_started', 'node_push', 'weights_changed'].every((t) => seen.some((e) => e.type === t)),
        'the kept events replayed',
        10000,
      );
      const from = seen.length;
      const d = await http('POST', `${api()}/api/v1/backends/be1/drain`, { token: t!.token });
      expect(d.status).to.equal(200);
      const be1Weight = (e: StampedEvent) =>
        e.type === 'weights_changed' ? e.backends.find((b) => b.id === 'be1')?.weight : undefined;
      await eventually(
        () => {
          const live = seen.slice(from);
          return (
            live.some((e) => e.type === 'backend_drained' && e.backend === 'be1' && e.drained) &&
            live.some((e) => be1Weight(e) === 0) &&
            live.some((e) => e.type === 'node_push' && e.outcome === 'applied' && e.node === 'lb1')
          );
        },
        'the drain, be1 at weight 0 and the push, as events',
        30000,
      );
      await http('POST', `${api()}/api/v1/backends/be1/undrain`, { token: t!.token });
      await eventually(
        () => seen.slice(from).some((e) => (be1Weight(e) ?? 0) > 0),
        'be1 back in the weights',
        60000,
      );
    } finally {
      f.close();
    }
    expect(bad).to.deep.equal([]);
    for (const e of seen) expectSchema('event', e);
    expect(seen.every((e, i) => i === 0 || e.time >= seen[i - 1]!.time)).to.equal(true);
    const wrong = await http('GET', `${api()}/api/v1/events?history=maybe`);
    expect(wrong.status).to.equal(400);
    expectSchema('error', wrong.json);
  });

  it('POST drain / undrain with the token: 200 with the backend, 404 for an unknown one', async function () {
    const d = await http('POST', `${api()}/api/v1/backends/be2/drain`, {
      token: t!.token,
      body: '{"reason":"api test"}',
    });
    expect(d.status).to.equal(200);
    expectSchema('backend', d.json);
    expect(d.json).to.deep.include({ id: 'be2', state: 'draining', drained: true, drain_cause: 'operator' });
    await eventually(async () => (await lbWeight('be2')) === 0, 'be2 out of rotation at the LB', 30000);
    const u = await http('POST', `${api()}/api/v1/backends/be2/undrain`, { token: t!.token });
    expect(u.status).to.equal(200);
    expectSchema('backend', u.json);
    expect((u.json as { drained: boolean }).drained).to.equal(false);
    await eventually(async () => ((await lbWeight('be2')) ?? 0) > 0, 'be2 back in rotation at the LB', 60000);
    const missing = await http('POST', `${api()}/api/v1/backends/nobody/drain`, { token: t!.token });
    expect(missing.status).to.equal(404);
    expectSchema('error', missing.json);
  });

  it('sipweigh drain / undrain / status through the CLI: the LB takes the backend out and back', async function () {
    const drained = sipweigh('drain', 'be1', '--config', t!.controllerConfig, '--reason', 'kernel update');
    expect(drained.code, drained.err).to.equal(0);
    expect(drained.out).to.match(/^be1: drained/);
    await eventually(async () => (await lbWeight('be1')) === 0, 'be1 weight 0 in the LB list', 30000);
    const status = sipweigh('status', '--config', t!.controllerConfig);
    expect(status.code, status.err).to.equal(0);
    expect(status.out).to.match(/be1\s+DRAINED\s+0/);
    const json = sipweigh('status', '--api', api(), '--json');
    expect(json.code, json.err).to.equal(0);
    expectSchema('status', JSON.parse(json.out));
    const undrained = sipweigh('undrain', 'be1', '--config', t!.controllerConfig);
    expect(undrained.code, undrained.err).to.equal(0);
    await eventually(async () => ((await lbWeight('be1')) ?? 0) > 0, 'be1 back in the LB list', 60000);
  });

  it('after `lab up`, plain `sipweigh status` and `sipweigh drain` find the lab controller and its token', async function () {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'src/cli/main.ts'), ...args], {
        encoding: 'utf8',
        cwd: REPO_ROOT,
        timeout: 90000,
        env: { ...process.env, SIPWEIGH_LAB_DIR: t!.lab.state.dir },
      });
    const status = run('status');
    expect(status.status, status.stderr).to.equal(0);
    expect(status.stdout).to.match(/^controller pid \d+/);
    expect(status.stdout).to.match(/be2\s+up/);
    const drained = run('drain', 'be2');
    expect(drained.status, drained.stderr).to.equal(0);
    const undrained = run('undrain', 'be2');
    expect(undrained.status, undrained.stderr).to.equal(0);
    await eventually(async () => ((await lbWeight('be2')) ?? 0) > 0, 'be2 back in the LB list', 60000);
  });

  it('the CLI says clearly when the token is refused (exit 6) or the backend unknown (exit 4)', async function () {
    const wrong = join(t!.lab.state.dir, 'wrong.token');
    writeFileSync(wrong, 'not-the-token-0123456789\n');
    const r = sipweigh('drain', 'be1', '--api', api(), '--token-file', wrong);
    expect(r.code).to.equal(6);
    expect(r.err).to.equal(`sipweigh: the controller at ${api()} refused the request: wrong token\n`);
    const none = sipweigh('drain', 'be1', '--api', api());
    expect(none.code).to.equal(6);
    expect(none.err).to.match(/missing bearer token.*no token given/);
    const unknown = sipweigh('drain', 'nobody', '--config', t!.controllerConfig);
    expect(unknown.code).to.equal(4);
    expect(unknown.err).to.match(/no backend nobody/);
  });

  it('POST /api/v1/reload: 200 with the changes; closing open reads live makes GETs need the token', async function () {
    const same = await http('POST', `${api()}/api/v1/reload`, { token: t!.token });
    expect(same.status).to.equal(200);
    expectSchema('reload-response', same.json);
    expect(same.json).to.deep.include({ reloaded: true });

    const file = t!.controllerConfig;
    const original = readFileSync(file, 'utf8');
    const cfg = parse(original) as { api: { read_without_token: boolean } };
    cfg.api.read_without_token = false;
    writeFileSync(file, stringify(cfg));
    try {
      const r = await http('POST', `${api()}/api/v1/reload`, { token: t!.token });
      expect(r.status).to.equal(200);
      expect((r.json as { changes: { api_auth: boolean } }).changes.api_auth).to.equal(true);
      for (const path of [
        '/api/v1/status',
        '/api/v1/backends',
        '/api/v1/backends/be1',
        '/api/v1/lb-nodes',
        '/metrics',
      ]) {
        const open = await http('GET', `${api()}${path}`);
        expect(open.status, path).to.equal(401);
        expect(open.headers.get('www-authenticate')).to.match(/^Bearer/);
        expect((await http('GET', `${api()}${path}`, { token: 'wrong-token-0123456789' })).status).to.equal(
          401,
        );
        expect((await http('GET', `${api()}${path}`, { token: t!.token })).status, path).to.equal(200);
      }
      // The event stream is a read like the others.
      const stream = await http('GET', `${api()}/api/v1/events`);
      expect(stream.status).to.equal(401);
      const follower = followEvents({ url: api(), token: t!.token }, () => undefined);
      await follower.ready;
      follower.close();
      // The probes stay open: a load balancer or systemd checking health has no token.
      expect((await http('GET', `${api()}/healthz`)).status).to.equal(200);
      expect((await http('GET', `${api()}/readyz`)).status).to.equal(200);
    } finally {
      writeFileSync(file, original);
      const back = await http('POST', `${api()}/api/v1/reload`, { token: t!.token });
      expect(back.status).to.equal(200);
    }
    expect((await http('GET', `${api()}/api/v1/status`)).status).to.equal(200);
  });
});
