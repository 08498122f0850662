/**
 * Issue 3: `kamailio -c` accepts every shipped config: the example LB and backend with their
 * defaults, with the lab's defines and in stateful (benchmark) mode, and both snippets included
 * into an operator's existing config that already loads the usual modules and has its own
 * event_route[xhttp:request].
 */
import { expect } from 'chai';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backendDefines, lbDefines } from '../../src/lab/defines.js';
import { backendSettings, lbSettings } from '../../src/lab/lab.js';
import { kamailioCheck as checkWith, type Defines } from '../../src/lab/kamailio.js';
import { kamailioFeatures } from '../../src/lab/platforms.js';
import { planLab } from '../../src/lab/topology.js';
import { KAMAILIO_DIR, LAB_KAMAILIO_DIR } from '../support/harness.js';
import { describeEachKamailio } from '../support/platforms.js';

const LB_CFG = join(LAB_KAMAILIO_DIR, 'lb.cfg');
const BACKEND_CFG = join(LAB_KAMAILIO_DIR, 'backend.cfg');

function acceptedBy(cfg: string, defines: Defines = {}, binary?: string): void {
  const r = checkWith(cfg, defines, binary);
  expect(r.ok, `kamailio -c ${cfg} ${JSON.stringify(defines)}:\n${r.output}`).to.equal(true);
}

/** The head of an operator's existing kamailio.cfg: its own modules, loaded before the include. */
const OPERATOR_HEAD = `#!KAMAILIO
listen=udp:127.0.2.40:5060
listen=tcp:127.0.2.40:5071 name "sipweigh_rpc"
loadmodule "tm.so"
loadmodule "tmx.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "sanity.so"
loadmodule "xhttp.so"
loadmodule "jsonrpcs.so"
loadmodule "dispatcher.so"
modparam("dispatcher", "list_file", "/etc/kamailio/dispatcher.list")
`;

describeEachKamailio('data plane: shipped Kamailio configs pass kamailio -c', function (platform) {
  this.timeout(60000);
  const expectAccepted = (cfg: string, defines: Defines = {}) => acceptedBy(cfg, defines, platform.binary);
  const kamailioCheck = (cfg: string) => checkWith(cfg, {}, platform.binary);
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'sipweigh-dataplane-config-'));
  });

  it('lb.cfg with its defaults', () => expectAccepted(LB_CFG));
  it('backend.cfg with its defaults', () => expectAccepted(BACKEND_CFG));

  it('lb.cfg and backend.cfg with the lab defines', () => {
    const plan = planLab({ backends: 2, capacities: [200, 100] });
    expectAccepted(LB_CFG, lbDefines(lbSettings(plan, join(dir, 'dispatcher.list'))));
    for (const be of plan.backends) expectAccepted(BACKEND_CFG, backendDefines(backendSettings(plan, be)));
  });

  it('lb.cfg in stateful mode, with probing and latency statistics', () =>
    expectAccepted(LB_CFG, { SW_STATEFUL: true, SW_DS_PING_INTERVAL: 1, SW_DS_LATENCY_STATS: 1 }));

  it('lb.cfg keeps latency statistics over a reload where the version can (6.1), and 5.6 refuses it', () => {
    const defines = { SW_DS_PING_INTERVAL: 1, SW_DS_LATENCY_STATS: 1, SW_DS_RETAIN_LATENCY_STATS: true };
    if (kamailioFeatures(platform.version).retainLatencyStats) expectAccepted(LB_CFG, defines);
    else expect(checkWith(LB_CFG, defines, platform.binary).ok).to.equal(false);
  });

  it('lb.cfg without the backstop, and with always-on probing over SW_NO_BACKSTOP (quality baselines)', () => {
    expectAccepted(LB_CFG, { SW_NO_BACKSTOP: true });
    expectAccepted(LB_CFG, { SW_NO_BACKSTOP: true, SW_DS_PING_INTERVAL: 1, SW_DS_PROBING_MODE: 1 });
    expectAccepted(LB_CFG, { SW_DS_PING_INTERVAL: 1, SW_DS_PROBING_MODE: 1, SW_DS_PING_TIMEOUT_MS: 500 });
  });

  it('the LB snippet in an operator config with its own event_route[tm:local-request]', () => {
    const cfg = join(dir, 'operator-lb-local-request.cfg');
    const body = (escape: boolean) => `${OPERATOR_HEAD}
${escape ? '#!define SIPWEIGH_NO_TM_LOCAL_REQUEST_EVENT_ROUTE' : ''}
include_file "${join(KAMAILIO_DIR, 'sipweigh-lb.cfg')}"
request_route {
	route(SIPWEIGH_LB);
}
event_route[tm:local-request] {
	route(SIPWEIGH_LOCAL_REQUEST);
}
`;
    writeFileSync(cfg, body(true));
    expectAccepted(cfg);
    // Without the escape Kamailio refuses the second event route: the define is needed.
    writeFileSync(cfg, body(false));
    expect(kamailioCheck(cfg).ok).to.equal(false);
  });

  it('lb.cfg with a list of allowed RPC sources and no password', () =>
    expectAccepted(LB_CFG, { SW_LB_IP: '127.0.2.40', SW_RPC_ALLOW: '"127.0.0.1/32,10.1.0.0/16"' }));

  it('the LB snippet inside an operator config with its own modules, xhttp route and admission hook', () => {
    const cfg = join(dir, 'operator-lb.cfg');
    writeFileSync(
      cfg,
      `${OPERATOR_HEAD}
#!define SIPWEIGH_DS_SET 7
#!define SIPWEIGH_NO_XHTTP_EVENT_ROUTE
#!define SIPWEIGH_ADMISSION_HOOK
loadmodule "pipelimit.so"
include_file "${join(KAMAILIO_DIR, 'sipweigh-lb.cfg')}"
request_route {
	route(SIPWEIGH_LB);
}
route[SIPWEIGH_ADMISSION] {
	if (!pl_check("sipweigh_invite")) { append_to_reply("Retry-After: 5\\r\\n"); pl_drop(); exit; }
}
event_route[xhttp:request] {
	if ($hu =~ "^/metrics") { xhttp_reply("200", "OK", "text/plain", "ok\\n"); exit; }
	route(SIPWEIGH_RPC_HTTP);
}
`,
    );
    expectAccepted(cfg);
  });

  it('the backend snippet inside an operator config that loads its own modules', () => {
    const cfg = join(dir, 'operator-backend.cfg');
    writeFileSync(
      cfg,
      `${OPERATOR_HEAD}
#!define SIPWEIGH_LB_TRUSTED "127.0.2.10/32,127.0.2.9"
include_file "${join(KAMAILIO_DIR, 'sipweigh-backend.cfg')}"
request_route {
	route(SIPWEIGH_BACKEND);
	if (!t_relay()) sl_reply_error();
}
`,
    );
    expectAccepted(cfg);
  });

  it('lb.cfg with the Call-ID table replicated (SW_DMQ), and refused without its DMQ address', () => {
    const dmq = {
      SW_DMQ: true,
      SW_DMQ_IP: '127.0.2.40',
      SW_DMQ_PORT: 5090,
      SW_DMQ_ADDRESS: '"sip:127.0.2.40:5090"',
      SW_DMQ_NOTIFY1: '"sip:127.0.2.41:5090"',
      SW_DMQ_ALLOW: '"127.0.2.41/32"',
    };
    expectAccepted(LB_CFG, dmq);
    expectAccepted(LB_CFG, { ...dmq, SW_ADMISSION: true, SW_GUARD: true });
    // The KDMQ timeout's event_route[tm:local-request] without the backstop, beside the lab's own
    // local-request route (always-on probing), and the KDMQ filter on the stateful path.
    expectAccepted(LB_CFG, { ...dmq, SW_NO_BACKSTOP: true, SW_ADMISSION: true });
    expectAccepted(LB_CFG, { ...dmq, SW_DS_PING_INTERVAL: 1, SW_DS_PING_TIMEOUT_MS: 500 });
    expectAccepted(LB_CFG, { ...dmq, SW_STATEFUL: true });
    // No defaults for the address and the allow-list: a node half configured does not start.
    expect(checkWith(LB_CFG, { ...dmq, SW_DMQ_ADDRESS: false }, platform.binary).ok).to.equal(false);
    expect(checkWith(LB_CFG, { ...dmq, SW_DMQ_ALLOW: false }, platform.binary).ok).to.equal(false);
  });

  it('rejects a broken config (the check can fail)', () => {
    const cfg = join(dir, 'broken.cfg');
    writeFileSync(
      cfg,
      `#!KAMAILIO\ninclude_file "${join(KAMAILIO_DIR, 'sipweigh-lb.cfg')}"\nrequest_route { sipweigh_no_such_function(); }\n`,
    );
    expect(kamailioCheck(cfg).ok).to.equal(false);
  });
});
