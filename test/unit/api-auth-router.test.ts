import { expect } from 'chai';
import { authorize, bearerToken, tokenMatches, type AuthSettings } from '../../src/api/auth.js';
import { parseBody } from '../../src/api/body.js';
import { apiValidator } from '../../src/api/schemas.js';
import { matchRoute } from '../../src/api/router.js';

const TOKEN = 'c0ffee-0123456789abcdef';
const closed: AuthSettings = { token: TOKEN, readWithoutToken: false };
const openReads: AuthSettings = { token: TOKEN, readWithoutToken: true };
const noToken: AuthSettings = { token: null, readWithoutToken: true };

describe('API auth (bearer token)', function () {
  it('reads the token of an Authorization header, and nothing else', function () {
    expect(bearerToken(`Bearer ${TOKEN}`)).to.equal(TOKEN);
    expect(bearerToken(`bearer   ${TOKEN} `)).to.equal(TOKEN);
    for (const h of [undefined, '', 'Bearer', 'Bearer ', `Basic ${TOKEN}`, `Bearer a b`, `Bearer ${TOKEN}\n`])
      expect(bearerToken(h), String(h)).to.equal(null);
  });

  it('compares tokens exactly, whatever their lengths', function () {
    expect(tokenMatches(TOKEN, TOKEN)).to.equal(true);
    for (const t of [TOKEN.slice(0, -1), `${TOKEN}x`, TOKEN.toUpperCase(), '', 'x'])
      expect(tokenMatches(t, TOKEN), t).to.equal(false);
    expect(tokenMatches(null, TOKEN)).to.equal(false);
    expect(tokenMatches(TOKEN, null)).to.equal(false);
  });

  it('lets probes through always, reads when open, writes only with the right token', function () {
    const ok = (a: ReturnType<typeof authorize>) => a.ok;
    expect(ok(authorize('open', undefined, closed))).to.equal(true);
    expect(ok(authorize('read', undefined, closed))).to.equal(false);
    expect(ok(authorize('read', undefined, openReads))).to.equal(true);
    expect(ok(authorize('read', `Bearer ${TOKEN}`, closed))).to.equal(true);
    expect(ok(authorize('write', undefined, openReads))).to.equal(false);
    expect(ok(authorize('write', 'Bearer wrong-token-value', openReads))).to.equal(false);
    expect(ok(authorize('write', `Bearer ${TOKEN}`, openReads))).to.equal(true);
    const none = authorize('write', `Bearer ${TOKEN}`, noToken);
    expect(none.ok).to.equal(false);
    expect(none.ok ? '' : none.error).to.match(/none is configured/);
  });

  it('never puts the presented token into its reason', function () {
    const d = authorize('write', 'Bearer guessed-secret-123', closed);
    expect(d.ok ? '' : d.error).to.not.contain('guessed-secret-123');
  });
});

describe('API routes', function () {
  it('matches every endpoint and extracts the backend id', function () {
    const cases: [string, string, string, string | null][] = [
      ['GET', '/healthz', 'healthz', null],
      ['GET', '/readyz', 'readyz', null],
      ['GET', '/metrics', 'metrics', null],
      ['GET', '/api/v1/status', 'status', null],
      ['GET', '/api/v1/backends', 'backends', null],
      ['GET', '/api/v1/backends/be-1.a_b', 'backend', 'be-1.a_b'],
      ['POST', '/api/v1/backends/be1/drain', 'drain', 'be1'],
      // A backend discovered from the LB's list without a duid is named host:port.
      ['POST', '/api/v1/backends/10.0.0.5%3A5060/drain', 'drain', '10.0.0.5:5060'],
      ['GET', '/api/v1/backends/10.0.0.5:5060', 'backend', '10.0.0.5:5060'],
      ['POST', '/api/v1/backends/be1/undrain', 'undrain', 'be1'],
      ['GET', '/api/v1/lb-nodes', 'lb_nodes', null],
      ['GET', '/api/v1/sources', 'sources', null],
      ['POST', '/api/v1/reload', 'reload', null],
      ['GET', '/api/v1/backends?x=1', 'backends', null],
    ];
    for (const [method, url, name, id] of cases) {
      const m = matchRoute(method, url);
      expect(m, `${method} ${url}`).to.deep.include({ kind: 'route', name, id });
    }
  });

  it('says 405 with the allowed methods for a known path, 404 for anything else', function () {
    expect(matchRoute('POST', '/healthz')).to.deep.equal({ kind: 'method_not_allowed', allow: ['GET'] });
    expect(matchRoute('GET', '/api/v1/reload')).to.deep.equal({
      kind: 'method_not_allowed',
      allow: ['POST'],
    });
    expect(matchRoute('DELETE', '/api/v1/backends/be1')).to.deep.equal({
      kind: 'method_not_allowed',
      allow: ['GET'],
    });
    for (const url of [
      '/',
      '/api',
      '/api/v1/backends/',
      '/api/v1/backends/be1/explode',
      '/api/v2/status',
      '/healthz/',
      '/api/v1/backends/-x',
      '/api/v1/backends/%2e%2e',
      '/api/v1/backends/%E0%A4%A',
      '/api/v1/backends/a%2Fb',
    ])
      expect(matchRoute('GET', url), url).to.deep.equal({ kind: 'not_found' });
  });

  it('gives each route the access it needs: probes open, reads read, changes write', function () {
    const access = (m: string, u: string) => {
      const r = matchRoute(m, u);
      return r.kind === 'route' ? r.access : null;
    };
    expect(access('GET', '/healthz')).to.equal('open');
    expect(access('GET', '/readyz')).to.equal('open');
    expect(access('GET', '/metrics')).to.equal('read');
    expect(access('GET', '/api/v1/backends')).to.equal('read');
    expect(access('POST', '/api/v1/backends/be1/drain')).to.equal('write');
    expect(access('POST', '/api/v1/reload')).to.equal('write');
  });
});

describe('API request bodies (schemas/api/drain-request.schema.json)', function () {
  it('takes an empty body or a reason', function () {
    expect(parseBody('', 'drain-request', {})).to.deep.equal({ ok: true, value: {} });
    expect(parseBody('{}', 'drain-request', {})).to.deep.equal({ ok: true, value: {} });
    expect(parseBody('{"reason":"kernel update"}', 'drain-request', {})).to.deep.equal({
      ok: true,
      value: { reason: 'kernel update' },
    });
  });

  it('refuses bad bodies naming the field', function () {
    const cases: [string, RegExp][] = [
      ['{"reason":', /^body: not JSON/],
      ['[1,2]', /^body: must be object/],
      ['"drain"', /^body: must be object/],
      ['{"reason":42}', /^reason: must be string/],
      ['{"reason":""}', /^reason: must NOT have fewer than 1 characters/],
      [JSON.stringify({ reason: 'x'.repeat(201) }), /^reason: must NOT have more than 200 characters/],
      ['{"reason":"ok","colour":"blue"}', /^colour: unknown field/],
    ];
    for (const [text, want] of cases) {
      const r = parseBody(text, 'drain-request', {});
      expect(r.ok, text).to.equal(false);
      expect(r.ok ? '' : r.error, text).to.match(want);
    }
  });
});

describe('API schemas (schemas/api/)', function () {
  it('every one compiles in strict mode', function () {
    for (const name of [
      'error',
      'health',
      'ready',
      'status',
      'backend',
      'backends',
      'lb-nodes',
      'sources',
      'drain-request',
      'reload-response',
    ] as const)
      expect(() => apiValidator(name), name).to.not.throw();
  });

  it('ready: true alone, or false with its reasons', function () {
    const v = apiValidator('ready');
    expect(v({ ready: true })).to.equal(true);
    expect(
      v({ ready: false, reasons: ['LB node lb1 has not been read or pushed successfully yet'] }),
    ).to.equal(true);
    expect(v({ ready: false })).to.equal(false);
    expect(v({ ready: true, reasons: [] })).to.equal(false);
  });
});
